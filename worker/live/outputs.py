"""Outputs the broker refuses for good, and the bound on rolling back.

A produce error about one message's content (``MSG_SIZE_TOO_LARGE``, ``INVALID_RECORD``...)
would fail the same way every time the batch is redone. So it becomes that event's
outcome: the batch is rolled back once, and when it comes again the event whose
prediction record was refused goes to the dead-letter topic with reason
``output_rejected`` instead. A dead letter the DLQ itself refuses has nowhere left to go:
the worker stops (exit 3) with one line naming the event and the broker's error.

Whatever else makes batches roll back, more than ``MAX_ROLLBACKS_IN_A_ROW`` of them
without one delivered is a fatal error, never a wedge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import orjson

from model_bundles.events import Rejection
from schemas.errors import RuntimeFailure
from schemas.wire_names import (
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    RejectReason,
)
from worker.core.record_avro import AvroRecords
from worker.core.scoring import InputEvent, Rejected, ScoredBatch
from worker.kafka.types import KafkaFailure, Outgoing
from worker.logs import EventLog

MAX_ROLLBACKS_IN_A_ROW = 10
"""Batches rolled back one after the other, none delivered, before the worker gives up."""
Position = tuple[str, int, int]
"""(topic, partition, offset) of an input event"""


class OutputGuard:
    """Remembers refused outputs until their events are delivered another way."""

    def __init__(
        self, dlq_topic: str | None, log: EventLog, avro: AvroRecords | None = None
    ) -> None:
        self.dlq_topic = dlq_topic
        self.log = log
        self.avro = avro
        """``--output-format avro``: records are read back from the wire format."""
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

    def rolled_back(self, sent: Sequence[Outgoing], refused: Sequence[KafkaFailure]) -> None:
        """Note the messages of ``sent`` the broker refused for good; RuntimeFailure when a
        dead letter was refused or too many batches rolled back in a row."""
        self.rollbacks_in_a_row += 1
        for problem in refused:
            self._refused(sent, problem)
        if self.rollbacks_in_a_row > MAX_ROLLBACKS_IN_A_ROW:
            raise RuntimeFailure(
                f"{self.rollbacks_in_a_row} batches rolled back in a row, none delivered "
                "(see the rolled_back log lines); giving up"
            )

    def _refused(self, sent: Sequence[Outgoing], problem: KafkaFailure) -> None:
        message = problem.message
        assert message is not None
        if message.topic == self.dlq_topic:
            where = _dead_letter_source(sent, message)
            raise RuntimeFailure(
                f"dead-letter topic {message.topic} refused the dead letter of "
                f"{_describe(where)}: {problem}"
            )
        position = _record_source(message, self.avro)
        if position is None:  # not a prediction record: nothing to route elsewhere
            return
        detail = f"{message.topic} refused the prediction record: {problem}"
        self.refused[position] = detail
        self.log.error("output_rejected", source=_describe(position), error=str(problem))


def _record_source(message: Outgoing, avro: AvroRecords | None) -> Position | None:
    """Where a prediction record came from, read from its body (SPEC ``source``)."""
    try:
        value = message.value or b""
        record = avro.decode(value) if avro is not None and avro.encodes(message.topic) else None
        source = (record if record is not None else orjson.loads(value))["source"]
        return str(source["topic"]), int(source["partition"]), int(source["offset"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, EOFError):
        return None


def _dead_letter_source(sent: Sequence[Outgoing], refused: Outgoing) -> Position | None:
    """A dead letter's source, from the headers of the message sent (delivery reports
    carry no headers)."""
    for m in sent:
        if (m.topic, m.key, m.value) == (refused.topic, refused.key, refused.value):
            headers = {k: v.decode(errors="replace") for k, v in m.headers}
            try:
                return (
                    headers[HEADER_SOURCE_TOPIC],
                    int(headers[HEADER_SOURCE_PARTITION]),
                    int(headers[HEADER_SOURCE_OFFSET]),
                )
            except (KeyError, ValueError):
                return None
    return None


def _describe(position: Position | None) -> str:
    if position is None:
        return "an event of unknown position"
    topic, partition, offset = position
    return f"topic {topic} partition {partition} offset {offset}"
