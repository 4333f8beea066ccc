"""Bounded replay: score a recorded range of a topic with a bundle, deterministically.

The range is fixed before the first read (see ``worker.kafka.ranges``) and read
partition by partition in offset order, so the output is ordered by partition,
then offset: two replays of the same range with the same bundle write the same
bytes. Records are exactly what the live worker produces for the same messages
(same scorer, same ``source``), so a replay file can be compared with a
recording of the live output topic, or with the research path's output.

With an expected file, every record is compared as it is written and the
``scoring_parity_*`` counters move batch by batch.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from worker.core.complete_file import CompleteFile
from worker.core.counts import counted
from worker.core.events import InputEvent
from worker.core.record_avro import AvroRecords
from worker.core.recording import OutgoingMessage, RecordedMessage
from worker.core.scoring import BatchScorer, ScoredBatch, ScoringObserver
from worker.replay.parity import ParityChecker

MAX_REPORTED_REJECTS = 20


class ReplayObserver(ScoringObserver, Protocol):
    """What replay reports as it goes; ``worker.monitoring.metrics.WorkerMetrics`` is one."""

    def parity_checked(self, checked: int, mismatched: int) -> None: ...


class Sink(Protocol):
    """Where the prediction records go, in order."""

    def write(self, events: list[InputEvent], batch: ScoredBatch) -> None: ...


def input_event(message: RecordedMessage) -> InputEvent:
    """A recorded message as the scorer's input event (research scoring and replay alike)."""
    return InputEvent(
        value=message.value,
        key=message.key,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=message.timestamp_ms,
    )


@dataclass
class ReplaySummary:
    read: int = 0
    scored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def line(self, source: str, target: str) -> str:
        detail = ", ".join(f"{r} {n}" for r, n in sorted(self.rejected.items()))
        rejects = sum(self.rejected.values())
        read = counted(self.read, "event")
        text = f"replayed {read} of {source}: scored {self.scored}, rejected {rejects}"
        return text + (f" ({detail})" if detail else "") + f" -> {target}"


def replay(
    batches: Iterable[list[RecordedMessage]],
    scorer: BatchScorer,
    sink: Sink,
    *,
    observer: ReplayObserver | None = None,
    checker: ParityChecker | None = None,
    report: Callable[[str], None] = lambda _line: None,
) -> ReplaySummary:
    """Score every batch in order and hand the records to ``sink``; counts in the summary."""
    summary = ReplaySummary()
    for messages in batches:
        events = [input_event(m) for m in messages]
        started = time.perf_counter()
        scored = scorer.score(events)
        duration_s = time.perf_counter() - started
        sink.write(events, scored)
        summary.read += len(events)
        summary.scored += len(scored.records)
        for rejected in scored.rejected:
            reason = rejected.rejection.reason.value
            summary.rejected[reason] += 1
            if sum(summary.rejected.values()) <= MAX_REPORTED_REJECTS:
                e = events[rejected.index]
                report(f"{e.topic}:{e.partition}:{e.offset}: {reason}: {rejected.rejection.detail}")
        compared = checker.add_actual(scored.records) if checker is not None else None
        if observer is not None:
            topic = events[0].topic if events else ""
            observer.events_read(topic, len(events))
            observer.batch_scored(topic, len(events), scored, duration_s)
            observer.delivered(len(scored.records), [], time.time())
            if compared is not None:
                observer.parity_checked(*compared)
    hidden = sum(summary.rejected.values()) - MAX_REPORTED_REJECTS
    if hidden > 0:
        report(f"... and {hidden} more rejected events")
    return summary


class FileSink(CompleteFile):
    """Prediction records as JSON lines; the file appears only complete."""

    def write(self, events: list[InputEvent], batch: ScoredBatch) -> None:
        self.write_lines(batch.records)


def outgoing(events: list[InputEvent], batch: ScoredBatch) -> list[OutgoingMessage]:
    """Records as messages: key = the input's key, timestamp = the input's timestamp."""
    return [
        OutgoingMessage(value=record, key=events[i].key, timestamp_ms=events[i].timestamp_ms)
        for i, record in zip(batch.indices, batch.records, strict=True)
    ]


class TopicSink:
    """Records to a topic through ``send`` (``kafka_ranges.TopicWriter.send``); with
    ``avro`` (``--output-format avro``) in the wire format of ``topic``'s schema id."""

    def __init__(
        self,
        send: Callable[[list[OutgoingMessage]], None],
        avro: AvroRecords | None = None,
        topic: str = "",
    ) -> None:
        self.send = send
        self.avro = avro
        self.topic = topic

    def write(self, events: list[InputEvent], batch: ScoredBatch) -> None:
        messages = outgoing(events, batch)
        if self.avro is not None:
            encode, topic = self.avro.encode, self.topic
            messages = [replace(m, value=encode(topic, m.value or b"")) for m in messages]
        self.send(messages)
