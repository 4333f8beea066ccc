"""The run loop: poll a micro-batch, score it, deliver it, repeat.

A batch is what has arrived since the previous one, up to ``max_batch_events``; only
after an idle wait does it linger ``max_batch_age_ms`` for more (``worker.kafka.clients.gather``).
It is scored in one call, and delivered (records, dead letters and offsets together)
before the next poll, so no transaction is ever open while the consumer polls: a
rebalance callback, which librdkafka only runs inside a poll, finds nothing in flight.
Messages a poll returns for partitions revoked during that same poll are dropped (and
re-read by whoever owns the partition, from the committed offset).

Stops: SIGTERM/SIGINT (finish the batch in hand, commit, leave the group), ``max_events``,
``idle_timeout_s`` (counted only while assigned and caught up, ``Worker._idle``).
Broker away: readiness false, retry with backoff, give up (exit 3) after
``broker_timeout_s``. Fenced or unauthorised: exit 3 (see ``worker.live.health``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import repeat
from operator import attrgetter
from typing import TypeVar

from schemas.errors import RuntimeFailure, StartupAborted
from schemas.wire_names import HEADER_INSTANCE, HEADER_SCORED_AT
from worker.core.events import InputEvent
from worker.core.formats import RegistryUnavailable, SchemaSource, learn_all
from worker.core.record_avro import AvroRecords
from worker.core.scoring import BatchScorer, ScoredBatch
from worker.kafka.types import KafkaFailure, Outgoing, Partition, RebalanceListener
from worker.live.deadletter import dead_letter_messages
from worker.live.delivery import DeliveryBatch
from worker.live.hanging import HangingWatch, WatchSettings
from worker.live.health import FATAL_KINDS, Health, Stopped
from worker.live.outputs import OutputGuard
from worker.live.ports import (
    Connector,
    Extra,
    NullObserver,
    Observer,
    RunSummary,
    first_offsets,
    next_offsets,
)
from worker.live.positions import Positions
from worker.live.progress import Progress
from worker.live.settings import WorkerSettings
from worker.live.stopping import close_within
from worker.live.watchdog import ModelWatchdog
from worker.logs import EventLog

_T = TypeVar("_T")


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
        extra: Extra | None = None,
        schemas: SchemaSource | None = None,
        avro: AvroRecords | None = None,
    ) -> None:
        self.settings = settings
        self.extra = extra
        self.schemas = schemas
        """Writer schemas for the scorer's wire decoder (``--value-format avro``...)."""
        self.avro = avro
        """``--output-format avro``: records leave in the wire format (schemas registered)."""
        self.scorer = scorer
        self.log = log
        self.observer = observer or NullObserver()
        self.clock = clock
        self.health = Health(settings, log, self.observer, clock)
        self.source = connector.source(self.health.on_kafka_error)
        self.delivery = connector.delivery(self.health, self.source)
        self.health.when_broker_lost(self.delivery.broker_lost)
        self.progress = Progress(self.observer, self.health, self.source.lags)
        offsets = connector.offsets()
        self.positions = Positions(
            self.source, offsets, log, self.observer, self.health.set_blocked, clock
        )
        self.hanging = HangingWatch(
            offsets,
            WatchSettings.of(settings),
            log,
            self.observer,
            self.delivery.reinit,
            clock,
        )
        self.watchdog = ModelWatchdog(  # real time, not the loop's clock
            settings.model_timeout_s,
            offsets,
            self.observer,
            self.health,
            log,
            calls=self._isolating_calls,
        )
        self.summary = RunSummary()
        self.outputs = OutputGuard(settings.dlq_topic, log)
        self.assigned: set[Partition] = set()
        self._revoked_in_poll: set[Partition] = set()
        self._last_event = clock()

    def _isolating_calls(self) -> int:
        """The champion's and the challengers' (progress for the watchdog)."""
        extra = self.extra.isolating_calls if self.extra is not None else 0
        return self.scorer.isolating_calls + extra

    def run(self) -> RunSummary:
        """Join the group and loop until a stop condition; RuntimeFailure when fatal."""
        s = self.settings
        self._log_start()
        started = self.clock()
        try:
            extra_topics = self.extra.topics if self.extra else ()
            for topic in filter(None, (s.input_topic, s.output_topic, s.dlq_topic, *extra_topics)):
                self._require(topic)
            self.delivery.start()
        except StartupAborted:  # a stop signal during start-up: a clean stop (exit 0)
            self._shutdown(started)
            return self.summary
        except BaseException:
            # A fatal start (the broker refused us, a topic is missing): the clients are
            # closed now, while the interpreter is whole. Left to the exit, they were
            # destroyed during finalization, when librdkafka's threads may still call
            # into Python: the process died of SIGSEGV instead of exiting 3.
            self._shutdown(started)
            raise
        self.health.starting = False
        self.source.subscribe([s.input_topic], self)
        self.watchdog.start()
        try:
            while not self.stopping:
                self._step()
        except Stopped:  # asked to stop while waiting for the broker, no batch in hand
            pass
        finally:
            self._shutdown(started)
        return self.summary

    def _require(self, topic: str) -> None:
        """Every topic the worker reads or writes must exist (waits for the broker)."""
        if self._ask("metadata", lambda: self.source.partition_count(topic, 5.0)) is None:
            where = self.settings.bootstrap_servers
            raise RuntimeFailure(f"topic {topic} does not exist on {where}")

    def request_stop(self, reason: str) -> None:
        """Stop after the batch in hand (signal handlers call this)."""
        if not self.stopping:
            self.summary.stop_reason = reason
            self.health.stop()

    @property
    def stopping(self) -> bool:
        return self.health.stop_at is not None

    def _step(self) -> None:
        self.health.in_hand = False
        self.health.check()
        self.health.probe(lambda: self.source.partition_count(self.settings.input_topic, 1.0))
        self.positions.serve()
        if self.health.broker_ok:
            self.hanging.check(self.positions.waiting_for())
        limit = self.settings.max_batch_events
        if self.settings.max_events is not None:
            limit = min(limit, self.settings.max_events - self.summary.consumed)
            if limit <= 0:
                self.request_stop("max_events")
                return
        events = self._poll(limit)
        self.progress.read(self.settings.input_topic, events)
        if events:
            self._process(events)
        # committed or not: waiting events show
        caught_up = self.progress.report_lags(self.assigned)
        if events or not self._idle(caught_up):
            self._last_event = self.clock()
        elif self.clock() - self._last_event >= (self.settings.idle_timeout_s or float("inf")):
            self.request_stop("idle")

    def _idle(self, caught_up: bool) -> bool:
        """Idle (the ``--idle-timeout`` clock runs): the broker answers, partitions are
        owned and started, and none has an event waiting. Waiting for an assignment (dead
        members' sessions to expire), an outage or a backlog is not idleness: an idle
        stop exits 0, which a Job reads as "drained" (issue 28)."""
        return self.health.broker_ok and caught_up and not self.positions.waiting_for()

    def _poll(self, limit: int) -> list[InputEvent]:
        self._revoked_in_poll.clear()
        polled = self.source.poll_batch(limit, self.settings.max_batch_age_ms / 1000)
        for problem in polled.failures:
            if not self.positions.on_failure(problem):
                self.health.on_kafka_error(problem)
        revoked = self._revoked_in_poll
        if not revoked:
            return polled.events
        stale = [e for e in polled.events if (e.topic, e.partition) in revoked]
        back = {p: o for p, o in first_offsets(stale).items() if p in self.assigned}
        if back:  # revoked and assigned again within the poll: read them again
            self.source.seek(back)
        return [e for e in polled.events if (e.topic, e.partition) not in revoked]

    def _process(self, events: list[InputEvent]) -> None:
        self.health.in_hand = True
        self._learn_schemas(events)
        started = self.clock()
        self.watchdog.batch_started(events, self.assigned)
        try:
            scored = self.outputs.apply(events, self.scorer.score(events))
            duration_s = self.clock() - started
            # the challengers' model calls too: a challenger that hangs is a stuck batch
            extra, extra_sources = (
                self.extra.messages(events, scored) if self.extra is not None else ([], [])
            )
        finally:
            self.watchdog.batch_finished()
        messages, sources = self._messages(events, scored)
        messages += extra
        sources += extra_sources
        if self.avro is not None:
            messages = _in_avro(messages, self.avro)
        batch = DeliveryBatch(messages, next_offsets(events), sources)
        delivering = self.clock()
        delivered = self.delivery.deliver(batch)
        delivery_s = self.clock() - delivering
        self.progress.delivered(delivered, self.delivery.last_rollback)
        if delivered:
            self.outputs.delivered(events)
            if self.extra is not None:
                self.extra.delivered()
            self._account(events, scored, duration_s, delivery_s)
            return
        self.summary.rolled_back += 1
        self.outputs.rolled_back(batch, self.delivery.last_refused)  # raises past the bound
        # Read again from the committed offsets, not the batch's first ones: a commit
        # that timed out on the client may still have gone through on the broker.
        mine = [p for p in first_offsets(events) if p in self.assigned]
        if mine:
            self.positions.rewind(mine)

    def _learn_schemas(self, events: list[InputEvent]) -> None:
        """Fetch the writer schemas the batch names that the decoder has not seen, waiting
        (not ready, with backoff, up to ``broker_timeout_s``) while the registry is away: an
        event is never dead-lettered because the registry did not answer."""
        decoder = self.scorer.decoder
        if decoder is None or self.schemas is None:
            return
        while wanted := decoder.wanted(e.value for e in events):
            self.health.check()
            if self.stopping:  # the batch is not committed: it is read again after a restart
                raise Stopped()
            try:
                learn_all(decoder, self.schemas, wanted)
            except RegistryUnavailable as exc:
                self.health.registry_unavailable(str(exc))
                self.health.backoff.wait()
                continue
            self.health.registry_available()

    def _messages(
        self, events: Sequence[InputEvent], scored: ScoredBatch
    ) -> tuple[list[Outgoing], list[InputEvent]]:
        """The batch's prediction records and dead letters, and the input event of each."""
        s = self.settings
        headers = [  # what changes from run to run goes in headers, never in the body
            (HEADER_INSTANCE, (s.instance_id or "").encode()),
            (HEADER_SCORED_AT, str(int(time.time() * 1000)).encode()),
        ]
        # every event scored, in order (the common batch): the events are the sources
        indices = scored.indices
        whole = len(indices) == len(events) and indices == list(range(len(events)))
        sources = list(events) if whole else [events[i] for i in indices]
        if len(sources) != len(scored.records):
            raise ValueError("a scored batch holds as many records as scored events")
        out = list(
            map(
                _outgoing,
                zip(
                    repeat(s.output_topic),
                    scored.records,
                    map(_KEY, sources),
                    repeat(headers),
                ),
            )
        )
        if s.dlq_topic and scored.rejected:
            out += dead_letter_messages(
                events,
                scored.rejected,
                topic=s.dlq_topic,
                bundle_digest=self.scorer.bundle.digest,
                max_value_bytes=s.max_dead_letter_bytes,
                max_message_bytes=s.dlq_max_message_bytes,
            )
            sources += [events[r.index] for r in scored.rejected]
        return out, sources

    def _account(
        self, events: list[InputEvent], scored: ScoredBatch, duration_s: float, delivery_s: float
    ) -> None:
        summary = self.summary
        summary.batches += 1
        summary.consumed += len(events)
        summary.produced += len(scored.records)
        summary.rejected.update(r.rejection.reason.value for r in scored.rejected)
        self.observer.batch_scored(self.settings.input_topic, len(events), scored, duration_s)
        stamps = list(map(_TIMESTAMP, map(events.__getitem__, scored.indices)))
        self.observer.delivered(len(scored.records), stamps, time.time(), delivery_s)

    def _ask(self, what: str, ask: Callable[[], _T]) -> _T:
        """A broker request, retried with backoff while the broker is away."""
        while True:
            self.health.check()
            try:
                answer = ask()
            except KafkaFailure as exc:
                if exc.kind in FATAL_KINDS:
                    raise RuntimeFailure(f"{what}: {exc}") from None
                self.health.unavailable(f"{what}: {exc}")
                self.health.backoff.wait()
                continue
            self.health.available()
            return answer

    def _log_start(self) -> None:
        manifest, s = self.scorer.bundle.manifest, self.settings
        self.log.emit(
            "start",
            bundle={"name": manifest.name, "version": manifest.version, "digest": manifest.digest},
            selfcheck_ok=self.scorer.bundle.selfcheck.ok,
            id_field=self.scorer.id_field,  # records' event_id: the bundle's id_column or event_id
            transactional_id=s.transactional_id if s.delivery == "exactly-once" else None,
            settings=s.masked(),
        )

    def _shutdown(self, started: float) -> None:
        self.watchdog.stop()
        self.health.stop()
        for close in (self.source.close, self.delivery.close):
            try:
                close_within(close, self.health)  # a broker that is away: not for long
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

    # --- rebalances (kafka_types.RebalanceListener) ----------------------------------------

    def on_assigned(self, partitions: list[Partition]) -> None:
        self.assigned.update(partitions)
        self.log.emit("assigned", partitions=_names(partitions), assignment=_names(self.assigned))
        self.health.set_assigned(bool(self.assigned))
        self.positions.assigned(partitions)

    def on_revoked(self, partitions: list[Partition]) -> None:
        self._forget(partitions)
        self.log.emit("revoked", partitions=_names(partitions), assignment=_names(self.assigned))

    def on_lost(self, partitions: list[Partition]) -> None:
        self._forget(partitions)
        self.log.error("lost", partitions=_names(partitions), assignment=_names(self.assigned))

    def _forget(self, partitions: list[Partition]) -> None:
        self.assigned.difference_update(partitions)
        self._revoked_in_poll.update(partitions)
        self.progress.forget(partitions)
        self.positions.forget(partitions)
        self.health.set_assigned(bool(self.assigned))


_KEY = attrgetter("key")
_TIMESTAMP = attrgetter("timestamp_ms")


_outgoing: Callable[[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]], Outgoing] = partial(
    tuple.__new__, Outgoing
)
"""An Outgoing from its fields' tuple, in C (``Outgoing(...)`` runs a Python ``__new__``)."""


def _in_avro(messages: list[Outgoing], avro: AvroRecords) -> list[Outgoing]:
    """The prediction records among ``messages`` in the wire format; dead letters as they are."""
    return [
        m._replace(value=avro.encode(m.topic, m.value))
        if m.value is not None and avro.encodes(m.topic)
        else m
        for m in messages
    ]


def _names(partitions: Iterable[Partition]) -> list[str]:
    return [f"{t}:{p}" for t, p in sorted(partitions)]
