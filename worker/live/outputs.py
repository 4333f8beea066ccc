"""Outputs the broker refuses for good, and the bound on rolling back.

A produce error about one message's content (``MSG_SIZE_TOO_LARGE``, ``INVALID_RECORD``...)
would fail the same way every time the batch is redone. So it becomes that event's
outcome: the batch is rolled back once, and when it comes again the event whose
prediction record was refused goes to the dead-letter topic with reason
``output_rejected`` instead. A dead letter the DLQ itself refuses has nowhere left to go:
the worker stops (exit 3) with one line naming the event and the broker's error. A batch
carries the input event of each message (``DeliveryBatch.sources``): a refused message
names its event without its body or headers being read back.

Whatever else makes batches roll back, more than ``MAX_ROLLBACKS_IN_A_ROW`` of them
without one delivered is a fatal error, never a wedge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from schemas.errors import RuntimeFailure
from schemas.rejection import Rejection
from schemas.wire_names import RejectReason
from worker.core.events import InputEvent
from worker.core.scoring import Rejected, ScoredBatch
from worker.kafka.types import KafkaFailure
from worker.live.delivery import DeliveryBatch
from worker.logs import EventLog

MAX_ROLLBACKS_IN_A_ROW = 10
"""Batches rolled back one after the other, none delivered, before the worker gives up."""
Position = tuple[str, int, int]
"""(topic, partition, offset) of an input event"""


class OutputGuard:
    """Remembers refused outputs until their events are delivered another way."""

    def __init__(self, dlq_topic: str | None, log: EventLog) -> None:
        self.dlq_topic = dlq_topic
        self.log = log
        self.refused: dict[Position, str] = {}
        """Input position -> why its prediction record was refused."""
        self.rollbacks_in_a_row = 0

    def apply(self, events: Sequence[InputEvent], scored: ScoredBatch) -> ScoredBatch:
        """``scored`` with each event whose record was refused before moved to the
        rejected ones (``output_rejected``); unchanged when there is none."""
        if not self.refused:
            return scored
        moved = {
            i: self.refused[p]
            for i in scored.indices
            if (p := (events[i].topic, events[i].partition, events[i].offset)) in self.refused
        }
        if not moved:
            return scored
        keep = [k for k, i in enumerate(scored.indices) if i not in moved]
        rejected = [
            *scored.rejected,
            *(Rejected(i, Rejection(RejectReason.OUTPUT_REJECTED, d)) for i, d in moved.items()),
        ]
        return replace(
            scored,
            indices=[scored.indices[k] for k in keep],
            records=[scored.records[k] for k in keep],
            rejected=sorted(rejected, key=lambda r: r.index),
        )

    def delivered(self, events: Sequence[InputEvent]) -> None:
        """A batch went through: the count starts again, its refusals are settled."""
        self.rollbacks_in_a_row = 0
        if self.refused:
            for e in events:
                self.refused.pop((e.topic, e.partition, e.offset), None)

    def rolled_back(self, batch: DeliveryBatch, refused: Sequence[KafkaFailure]) -> None:
        """Note the messages of ``batch`` the broker refused for good; RuntimeFailure when a
        dead letter was refused or too many batches rolled back in a row."""
        self.rollbacks_in_a_row += 1
        if refused:
            sources = _sources(batch)
            for problem in refused:
                self._refused(sources, problem)
        if self.rollbacks_in_a_row > MAX_ROLLBACKS_IN_A_ROW:
            raise RuntimeFailure(
                f"{self.rollbacks_in_a_row} batches rolled back in a row, none delivered "
                "(see the rolled_back log lines); giving up"
            )

    def _refused(self, sources: dict[_Sent, InputEvent], problem: KafkaFailure) -> None:
        message = problem.message
        assert message is not None
        event = sources.get((message.topic, message.key, message.value))
        position = None if event is None else (event.topic, event.partition, event.offset)
        if message.topic == self.dlq_topic:
            raise RuntimeFailure(
                f"dead-letter topic {message.topic} refused the dead letter of "
                f"{_describe(position)}: {problem}"
            )
        if position is None:  # made from no input event: nothing to route elsewhere
            return
        detail = f"{message.topic} refused the prediction record: {problem}"
        self.refused[position] = detail
        self.log.error("output_rejected", source=_describe(position), error=str(problem))


_Sent = tuple[str, bytes | None, bytes | None]
"""(topic, key, value): what a delivery report gives back of a message (no headers)."""


def _sources(batch: DeliveryBatch) -> dict[_Sent, InputEvent]:
    """Each message of ``batch`` (as a report names it) -> the input event it was made from;
    the first one where two messages are the same bytes."""
    sources: dict[_Sent, InputEvent] = {}
    for m, event in zip(batch.messages, batch.sources, strict=False):
        sources.setdefault((m.topic, m.key, m.value), event)
    return sources


def _describe(position: Position | None) -> str:
    if position is None:
        return "an event of unknown position"
    topic, partition, offset = position
    return f"topic {topic} partition {partition} offset {offset}"
