"""The run loop: poll a micro-batch, score it, deliver it, repeat.

A batch closes at ``max_batch_events`` or ``max_batch_age_ms``, whichever comes first.
It is scored in one call, and delivered (records, dead letters and offsets together)
before the next poll, so no transaction is ever open while the consumer polls: a
rebalance callback, which librdkafka only runs inside a poll, finds nothing in flight.
Messages a poll returns for partitions revoked during that same poll are dropped (and
re-read by whoever owns the partition, from the committed offset).

Stops: SIGTERM/SIGINT (finish the batch in hand, commit, leave the group), ``max_events``,
``idle_timeout_s``. Broker away: readiness false, retry with backoff, give up (exit 3)
after ``broker_timeout_s``. Fenced or unauthorised: exit 3.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from worker.deadletter import dead_letter_messages
from worker.delivery import Backoff, Delivery, DeliveryBatch, Group, Status
from worker.errors import RuntimeFailure
from worker.kafka import FailureKind, KafkaFailure, Outgoing, Partition, Polled, RebalanceListener
from worker.logs import EventLog
from worker.scoring import BatchScorer, InputEvent, ScoredBatch
from worker.settings import WorkerSettings

HEADER_INSTANCE = "scoring.instance"
HEADER_SCORED_AT = "scoring.scored_at_ms"
FATAL_KINDS = (FailureKind.AUTH, FailureKind.FENCED, FailureKind.FATAL)


class Observer(Protocol):
    """Where the loop reports what it did (metrics plug in here)."""

    def batch_scored(
        self, topic: str, consumed: int, batch: ScoredBatch, duration_s: float
    ) -> None: ...
    def delivered(
        self, count: int, event_timestamps_ms: list[int | None], now_s: float
    ) -> None: ...
    def set_lag(self, topic: str, partition: int, lag: int) -> None: ...
    def forget_partition(self, topic: str, partition: int) -> None: ...
    def set_ready(self, ready: bool) -> None: ...


class NullObserver:
    def batch_scored(
        self, topic: str, consumed: int, batch: ScoredBatch, duration_s: float
    ) -> None:
        pass

    def delivered(self, count: int, event_timestamps_ms: list[int | None], now_s: float) -> None:
        pass

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        pass

    def forget_partition(self, topic: str, partition: int) -> None:
        pass

    def set_ready(self, ready: bool) -> None:
        pass


class Source(Group, Protocol):
    """The consumer side, as ``worker.kafka.GroupConsumer`` provides it."""

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None: ...
    def poll_batch(self, max_events: int, timeout_s: float) -> Polled: ...
    def seek(self, offsets: dict[Partition, int]) -> None: ...
    def committed(
        self, partitions: Sequence[Partition], timeout_s: float
    ) -> dict[Partition, int]: ...
    def lags(self, partitions: Sequence[Partition]) -> dict[Partition, int]: ...
    def partition_count(self, topic: str, timeout_s: float) -> int | None: ...
    def close(self) -> None: ...


class Connector(Protocol):
    """Builds the Kafka side; the worker hands in its error handler and itself as Status."""

    def source(self, on_error: Callable[[KafkaFailure], None]) -> Source: ...
    def delivery(self, status: Status, group: Group) -> Delivery: ...


@dataclass
class RunSummary:
    consumed: int = 0
    produced: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    rolled_back: int = 0
    stop_reason: str = ""


def next_offsets(events: Iterable[InputEvent]) -> dict[Partition, int]:
    """Offsets to commit after ``events``: one past the last per partition."""
    out: dict[Partition, int] = {}
    for e in events:
        key = (e.topic, e.partition)
        out[key] = max(out.get(key, 0), e.offset + 1)
    return out


def first_offsets(events: Iterable[InputEvent]) -> dict[Partition, int]:
    """Where to rewind to redo ``events``: the first offset per partition."""
    out: dict[Partition, int] = {}
    for e in events:
        key = (e.topic, e.partition)
        out[key] = min(out.get(key, e.offset), e.offset)
    return out


class Worker(RebalanceListener):
    """One live worker: a consumer group member delivering scored batches."""

    def __init__(
        self,
        settings: WorkerSettings,
        scorer: BatchScorer,
        connector: Connector,
        log: EventLog,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.scorer = scorer
        self.log = log
        self.source = connector.source(self.on_kafka_error)
        self.delivery = connector.delivery(self, self.source)
        self.observer = observer or NullObserver()
        self.clock = clock
        self.summary = RunSummary()
        self.assigned: set[Partition] = set()
        self._revoked_in_poll: set[Partition] = set()
        self._stop_at: float | None = None
        self._fatal: KafkaFailure | None = None
        self._broker_ok = True
        self._down_since = 0.0
        self._next_probe = 0.0
        self._ready = False
        self._last_event = clock()
        s = settings
        self._probe_backoff = Backoff(
            s.retry_backoff_initial_ms / 1e3, s.retry_backoff_max_ms / 1e3
        )

    # --- running ---------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Join the group and loop until a stop condition; RuntimeFailure when fatal."""
        self._preflight()
        self.delivery.start()
        self.source.subscribe([self.settings.input_topic], self)
        self._log_start()
        started = self.clock()
        try:
            while self._stop_at is None:
                self._step()
        finally:
            self._shutdown(started)
        return self.summary

    def request_stop(self, reason: str) -> None:
        """Stop after the batch in hand (signal handlers call this)."""
        if self._stop_at is None:
            self.summary.stop_reason = reason
            self._stop_at = self.clock()
            self._set_ready()

    @property
    def stopping(self) -> bool:
        return self._stop_at is not None

    def _log_start(self) -> None:
        manifest = self.scorer.bundle.manifest
        settings = self.settings
        self.log.emit(
            "start",
            bundle={"name": manifest.name, "version": manifest.version, "digest": manifest.digest},
            selfcheck_ok=self.scorer.bundle.selfcheck.ok,
            transactional_id=settings.transactional_id
            if settings.delivery == "exactly-once"
            else None,
            settings=settings.masked(),
        )

    def _step(self) -> None:
        self.check()
        self._probe_broker()
        limit = self.settings.max_batch_events
        if self.settings.max_events is not None:
            limit = min(limit, self.settings.max_events - self.summary.consumed)
            if limit <= 0:
                self.request_stop("max_events")
                return
        events = self._poll(limit)
        if events:
            self._last_event = self.clock()
            self._process(events)
        elif self._idle_for() >= (self.settings.idle_timeout_s or float("inf")):
            self.request_stop("idle")

    def _poll(self, limit: int) -> list[InputEvent]:
        self._revoked_in_poll.clear()
        polled = self.source.poll_batch(limit, self.settings.max_batch_age_ms / 1000)
        for problem in polled.failures:
            self.on_kafka_error(problem)
        if not self._revoked_in_poll:
            return polled.events
        stale = [e for e in polled.events if (e.topic, e.partition) in self._revoked_in_poll]
        back = {p: o for p, o in first_offsets(stale).items() if p in self.assigned}
        if back:  # revoked and assigned again within the poll: read them again
            self.source.seek(back)
        return [e for e in polled.events if (e.topic, e.partition) not in self._revoked_in_poll]

    def _process(self, events: list[InputEvent]) -> None:
        started = self.clock()
        scored = self.scorer.score(events)
        duration_s = self.clock() - started
        batch = DeliveryBatch(self._messages(events, scored), next_offsets(events))
        if not self.delivery.deliver(batch):
            self.summary.rolled_back += 1
            self._rewind(events)
            return
        self._account(events, scored, duration_s)

    def _rewind(self, events: list[InputEvent]) -> None:
        """After a rollback, read again from the committed offsets: a commit that timed out
        may still have gone through, so the batch's own first offsets could double it."""
        first = first_offsets(events)
        partitions = [p for p in first if p in self.assigned]
        while partitions:
            self.check()
            try:
                committed = self.source.committed(partitions, 5.0)
            except KafkaFailure as exc:
                if exc.kind in FATAL_KINDS:
                    raise RuntimeFailure(f"reading committed offsets: {exc}") from None
                self.unavailable(f"committed offsets: {exc}")
                self._probe_backoff.wait()
                continue
            self.available()
            self.source.seek({p: o if o >= 0 else first[p] for p, o in committed.items()})
            return

    def _messages(self, events: Sequence[InputEvent], scored: ScoredBatch) -> list[Outgoing]:
        s = self.settings
        headers = [
            (HEADER_INSTANCE, (s.instance_id or "").encode()),
            (HEADER_SCORED_AT, str(int(time.time() * 1000)).encode()),
        ]
        out = [
            Outgoing(s.output_topic, record, events[i].key, headers)
            for i, record in zip(scored.indices, scored.records, strict=True)
        ]
        if s.dlq_topic and scored.rejected:
            out += dead_letter_messages(
                events,
                scored.rejected,
                topic=s.dlq_topic,
                bundle_digest=self.scorer.bundle.digest,
                max_value_bytes=s.max_dead_letter_bytes,
            )
        return out

    def _account(self, events: list[InputEvent], scored: ScoredBatch, duration_s: float) -> None:
        summary = self.summary
        summary.batches += 1
        summary.consumed += len(events)
        summary.produced += len(scored.records)
        summary.rejected.update(r.rejection.reason.value for r in scored.rejected)
        self.observer.batch_scored(self.settings.input_topic, len(events), scored, duration_s)
        stamps = [events[i].timestamp_ms for i in scored.indices]
        self.observer.delivered(len(scored.records), stamps, time.time())
        for (topic, partition), lag in self.source.lags(sorted(self.assigned)).items():
            self.observer.set_lag(topic, partition, lag)

    def _idle_for(self) -> float:
        if not self._broker_ok:  # an outage is not idleness
            self._last_event = self.clock()
        return self.clock() - self._last_event

    def _preflight(self) -> None:
        """Wait for the broker; every topic the worker reads or writes must exist."""
        s = self.settings
        for topic in filter(None, (s.input_topic, s.output_topic, s.dlq_topic)):
            while True:
                self.check()
                try:
                    count = self.source.partition_count(topic, 5.0)
                except KafkaFailure as exc:
                    if exc.kind in FATAL_KINDS:
                        raise RuntimeFailure(f"cannot read metadata: {exc}") from None
                    self.unavailable(f"metadata: {exc}")
                    self._probe_backoff.wait()
                    continue
                if count is None:
                    raise RuntimeFailure(f"topic {topic} does not exist on {s.bootstrap_servers}")
                self.available()
                break

    def _shutdown(self, started: float) -> None:
        self._stop_at = self._stop_at or self.clock()
        self._set_ready()
        for close in (self.source.close, self.delivery.close):
            try:
                close()
            except Exception as exc:  # closing must not hide why the loop ended
                self.log.error("error", during="close", error=str(exc))
        s = self.summary
        self.log.emit(
            "stop",
            reason=s.stop_reason or "error",
            consumed=s.consumed,
            produced=s.produced,
            rejected=dict(s.rejected),
            batches=s.batches,
            rolled_back=s.rolled_back,
            duration_s=round(self.clock() - started, 3),
        )

    # --- health (delivery.Status) ----------------------------------------------------------

    def unavailable(self, detail: str) -> None:
        if self._broker_ok:
            self._broker_ok = False
            self.delivery.broker_lost()
            self._down_since = self.clock()
            self._next_probe = self.clock()
            self.log.error("broker_unavailable", detail=detail)
            self._set_ready()

    def available(self) -> None:
        if not self._broker_ok:
            self._broker_ok = True
            self._probe_backoff.reset()
            down_s = round(self.clock() - self._down_since, 3)
            self.log.emit("broker_available", down_s=down_s)
            self._set_ready()

    def check(self) -> None:
        """Raise RuntimeFailure when a fatal error was seen or a give-up deadline passed."""
        if self._fatal is not None:
            raise RuntimeFailure(f"{self._fatal.kind.value}: {self._fatal}")
        now = self.clock()
        if self._stop_at is not None and now - self._stop_at > self.settings.shutdown_timeout_s:
            raise RuntimeFailure(
                f"stopping: the batch in hand was not committed within "
                f"{self.settings.shutdown_timeout_s:g}s; it will be processed again"
            )
        limit = self.settings.broker_timeout_s
        if not self._broker_ok and limit and now - self._down_since > limit:
            raise RuntimeFailure(
                f"broker {self.settings.bootstrap_servers} unreachable for {limit:g}s"
            )

    def on_kafka_error(self, problem: KafkaFailure) -> None:
        """librdkafka's error callback and the poll's error messages land here."""
        if problem.kind in FATAL_KINDS:
            self._fatal = self._fatal or problem
            self.log.error(
                "fenced" if problem.kind == FailureKind.FENCED else "error", error=str(problem)
            )
        elif problem.broker_down:
            self.unavailable(str(problem))
        else:
            self.log.limited(
                f"kafka:{problem.code}", 10.0, "kafka_error", "warning", error=str(problem)
            )

    def _probe_broker(self) -> None:
        if self._broker_ok or self.clock() < self._next_probe:
            return
        try:
            self.source.partition_count(self.settings.input_topic, 1.0)
        except KafkaFailure:
            self._next_probe = self.clock() + self._probe_backoff.next_s
            self._probe_backoff.next_s = min(
                self._probe_backoff.next_s * 2, self._probe_backoff.max_s
            )
            return
        self.available()

    def _set_ready(self) -> None:
        ready = self._broker_ok and bool(self.assigned) and self._stop_at is None
        if ready != self._ready:
            self._ready = ready
            self.observer.set_ready(ready)

    # --- rebalances (kafka.RebalanceListener) ----------------------------------------------

    def on_assigned(self, partitions: list[Partition]) -> None:
        self.assigned.update(partitions)
        self.log.emit("assigned", partitions=_names(partitions), assignment=_names(self.assigned))
        self._set_ready()

    def on_revoked(self, partitions: list[Partition]) -> None:
        self._forget(partitions)
        self.log.emit("revoked", partitions=_names(partitions), assignment=_names(self.assigned))

    def on_lost(self, partitions: list[Partition]) -> None:
        self._forget(partitions)
        self.log.error("lost", partitions=_names(partitions), assignment=_names(self.assigned))

    def _forget(self, partitions: list[Partition]) -> None:
        self.assigned.difference_update(partitions)
        self._revoked_in_poll.update(partitions)
        for topic, partition in partitions:
            self.observer.forget_partition(topic, partition)
        self._set_ready()


def _names(partitions: Iterable[Partition]) -> list[str]:
    return [f"{t}:{p}" for t, p in sorted(partitions)]
