"""Fakes of the Kafka side for the run-loop tests: a partitioned log, a group, deliveries."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import orjson

from worker.core.events import InputEvent
from worker.kafka.clients import FailureKind, KafkaFailure, Partition, Polled, RebalanceListener
from worker.kafka.types import CommittedOffsets
from worker.live.delivery import DeliveryBatch, Group, Status
from worker.logs import EventLog

TOPIC = "in"


class FakeSource:
    """Partitions of InputEvents; polls round-robin; commits land in ``committed``.

    Like ``worker.kafka.offsets.ExplicitStartConsumer``, an assigned partition is read only
    once ``start_at`` started it; it also answers committed-offset requests (``unstable``:
    partitions whose offsets a transaction holds)."""

    def __init__(self, lines_per_partition: dict[int, list[bytes]]) -> None:
        self.log = {
            (TOPIC, p): [
                InputEvent(v, f"k{p}-{i}".encode(), TOPIC, p, i, 1_000 + i)
                for i, v in enumerate(lines)
            ]
            for p, lines in lines_per_partition.items()
        }
        self.position = {tp: 0 for tp in self.log}
        self.committed_offsets: dict[Partition, int] = {}
        self.listener: RebalanceListener | None = None
        self.assigned: list[Partition] = []
        self.seeks: list[dict[Partition, int]] = []
        self.closed = False
        self.before_poll: list[Callable[[FakeSource], None]] = []
        self.topics = {TOPIC, "out", "dlq"}
        self.metadata_error: KafkaFailure | None = None
        self.failures: list[KafkaFailure] = []
        self.started: set[Partition] = set()
        self.paused: set[Partition] = set()
        self.unstable: set[Partition] = set()
        self.asked: list[list[Partition]] = []

    # Source
    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        self.listener = listener

    def poll_batch(self, max_events: int, linger_s: float) -> Polled:
        assert self.listener is not None
        if not self.assigned:
            self.assign(sorted(self.log))
        for hook in list(self.before_poll):
            hook(self)
        events: list[InputEvent] = []
        for tp in self.assigned:
            if tp not in self.started or tp in self.paused:
                continue
            take = self.log[tp][self.position[tp] : self.position[tp] + max_events - len(events)]
            events += take
            self.position[tp] += len(take)
        failures, self.failures = self.failures, []
        return Polled(events, failures)

    def assign(self, partitions: list[Partition]) -> None:
        assert self.listener is not None
        self.assigned += partitions
        self.listener.on_assigned(partitions)

    def revoke(self, partitions: list[Partition], lost: bool = False) -> None:
        assert self.listener is not None
        self.assigned = [tp for tp in self.assigned if tp not in partitions]
        self.started.difference_update(partitions)
        (self.listener.on_lost if lost else self.listener.on_revoked)(partitions)

    def seek(self, offsets: dict[Partition, int]) -> None:
        self.seeks.append(dict(offsets))
        self.position.update(offsets)

    def start_at(self, offsets: Mapping[Partition, int | None]) -> None:
        for tp, offset in offsets.items():
            assert tp in self.assigned and tp not in self.started
            self.started.add(tp)
            self.position[tp] = offset or 0

    def pause(self, partitions: Sequence[Partition]) -> None:
        self.paused.update(partitions)

    def resume_at(self, offsets: Mapping[Partition, int | None]) -> None:
        self.seeks.append({tp: o or 0 for tp, o in offsets.items()})
        for tp, offset in offsets.items():
            self.paused.discard(tp)
            self.position[tp] = offset or 0

    def stable_and_end(
        self, partitions: Sequence[Partition], timeout_s: float
    ) -> dict[Partition, tuple[int, int]]:
        return {p: (0, 0) for p in partitions}  # no transaction open

    def ask_committed(self, partitions: Sequence[Partition], timeout_s: float) -> Future[Any]:
        self.asked.append(list(partitions))
        answer = CommittedOffsets()
        for tp in partitions:
            if tp in self.unstable:
                answer.unstable.append(tp)
            elif tp in self.committed_offsets:
                answer.offsets[tp] = self.committed_offsets[tp]
            else:
                answer.missing.append(tp)
        future: Future[Any] = Future()
        future.set_result(answer)
        return future

    def lags(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        return {tp: len(self.log[tp]) - self.position[tp] for tp in partitions}

    def partition_count(self, topic: str, timeout_s: float) -> int | None:
        if self.metadata_error is not None:
            raise self.metadata_error
        return len(self.log) if topic in self.topics else None

    def close(self) -> None:
        self.closed = True

    # Group
    def group_metadata(self) -> Any:
        return "generation-1"

    def commit(self, offsets: dict[Partition, int], asynchronous: bool = False) -> None:
        self.committed_offsets.update(offsets)


class FakeDelivery:
    """Commits offsets to the source on success; ``outcomes`` scripts failures."""

    def __init__(self, source: FakeSource) -> None:
        self.source = source
        self.delivered: list[DeliveryBatch] = []
        self.attempts = 0
        self.outcomes: list[bool] = []
        self.started = self.closed = False
        self.lost = 0
        self.last_rollback = ""
        self.last_refused: list[KafkaFailure] = []
        self.reinits: list[str] = []

    def start(self) -> None:
        self.started = True

    def deliver(self, batch: DeliveryBatch) -> bool:
        self.attempts += 1
        if self.outcomes and not self.outcomes.pop(0):
            self.last_rollback = "_SCRIPTED"
            return False
        self.delivered.append(batch)
        self.source.commit(batch.offsets)
        return True

    def broker_lost(self) -> None:
        self.lost += 1

    def reinit(self, why: str) -> None:
        self.reinits.append(why)

    def close(self) -> None:
        self.closed = True


class Connector:
    """``loop.Connector`` over the fakes."""

    def __init__(self, source: FakeSource, delivery: FakeDelivery | None = None) -> None:
        self._source = source
        self.fake_delivery = delivery or FakeDelivery(source)

    def source(self, on_error: Callable[[KafkaFailure], None]) -> FakeSource:
        return self._source

    def delivery(self, status: Status, group: Group) -> FakeDelivery:
        return self.fake_delivery

    def offsets(self) -> FakeSource:
        return self._source


class RecordingObserver:
    def __init__(self) -> None:
        self.ready: list[bool] = []
        self.scored: list[int] = []
        self.delivered_counts: list[int] = []
        self.lags: dict[tuple[str, int], int] = {}
        self.forgotten: list[tuple[str, int]] = []
        self.blocked: dict[tuple[str, int], str | None] = {}
        self.hanging: set[tuple[str, int]] = set()
        self.read = 0
        self.commits = 0
        self.rollbacks: list[str] = []

    def events_read(self, topic: str, count: int) -> None:
        self.read += count

    def committed(self) -> None:
        self.commits += 1

    def rolled_back(self, reason: str) -> None:
        self.rollbacks.append(reason)

    def batch_scored(self, topic: str, consumed: int, batch: Any, duration_s: float) -> None:
        self.scored.append(consumed)

    def delivered(
        self,
        count: int,
        event_timestamps_ms: list[int | None],
        now_s: float,
        delivery_s: float | None = None,
    ) -> None:
        self.delivered_counts.append(count)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lags[(topic, partition)] = lag

    def forget_partition(self, topic: str, partition: int) -> None:
        self.forgotten.append((topic, partition))

    def set_ready(self, ready: bool) -> None:
        self.ready.append(ready)

    def set_partition_blocked(self, topic: str, partition: int, reason: str | None) -> None:
        self.blocked[(topic, partition)] = reason

    def set_hanging(self, partitions: set[tuple[str, int]]) -> None:
        self.hanging = set(partitions)

    def set_batch_in_progress(self, seconds: float) -> None:
        """The watchdog's gauge (worker.live.ports.Observer): on a loaded machine its first
        tick falls inside a test, and a fake without it made the watchdog log an error."""
        self.batch_in_progress_s = seconds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def memory_log() -> tuple[EventLog, io.StringIO]:
    stream = io.StringIO()
    return EventLog(stream), stream


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def failure(kind: FailureKind, code: str = "X", broker_down: bool = False) -> KafkaFailure:
    return KafkaFailure(kind, code, "test", broker_down)
