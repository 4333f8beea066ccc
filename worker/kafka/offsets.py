"""Where partitions start, decided by the worker: explicit start offsets, and the group's
committed offsets fetched with stable-offset semantics through the admin API.

Why the worker does not let librdkafka start its partitions (librdkafka 2.16, read in
``rdkafka_assignment.c``): on assignment a read_committed consumer asks for the group's
committed offsets with ``require_stable`` (KIP-447) and retries while the broker answers
``UNSTABLE_OFFSET_COMMIT`` (a transaction holds pending offsets for the partition). If the
assignment changes while that request is in flight (another member joins), the answer
is not retried: the partition goes back on the pending list with an INVALID offset, and
the fetcher then starts it from ``auto.offset.reset``. With ``earliest`` that re-reads the
partition from offset 0 (duplicates); with ``error`` it stops for good.

So the consumer here claims each assigned partition without starting it
(``incremental_assign([])``), the worker fetches the committed offsets itself
(``ExplicitStartConsumer.ask_committed``: the consumer's own stable-offset fetch, one
partition per request, in helper threads so the loop never blocks on it) and starts
each partition at an explicit offset (``ExplicitStartConsumer.start_at``). (An admin
client's ListConsumerGroupOffsets was tried first: after a broker restart its requests
kept timing out for minutes, also in a new admin client, while the consumer's worked.)
``OffsetsAdmin`` serves the hanging-transaction watch: last stable offsets against
high watermarks. ``auto.offset.reset`` is ``error``: a committed
offset outside the log (retention) surfaces as an ``_AUTO_OFFSET_RESET`` error for that
partition instead of a silent jump.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from worker.kafka.clients import GroupConsumer
from worker.kafka.errors import call as _call
from worker.kafka.errors import from_exception
from worker.kafka.types import (
    CommittedOffsets,
    ErrorHandler,
    FailureKind,
    KafkaFailure,
    Partition,
    RebalanceListener,
)

_ADMIN_PREFIXES = (
    *("bootstrap.", "security.", "sasl.", "ssl.", "socket.", "client.", "broker."),
    *("reconnect.", "metadata.", "retry.", "log_level", "logger", "error_cb"),
)


REPLACE_AFTER_TIMEOUTS = 3
"""Admin requests timing out in a row before the admin client is replaced."""


def admin_config(consumer_config: Mapping[str, Any]) -> dict[str, Any]:
    """The connection and security part of a consumer's librdkafka config, for an admin
    client (consumer-only keys would only draw configuration warnings)."""
    return {k: v for k, v in consumer_config.items() if k.startswith(_ADMIN_PREFIXES)}


def _parts(tps: Sequence[TopicPartition]) -> list[Partition]:
    return [(tp.topic, tp.partition) for tp in tps]


class ExplicitStartConsumer(GroupConsumer):
    """A group member whose assigned partitions start only where ``start_at`` says.

    On assignment the partitions are claimed (the rebalance completes) but not started:
    nothing is fetched for them until the worker knows their committed offset. On
    revocation only the started partitions are unassigned from the client."""

    def __init__(
        self,
        config: Mapping[str, Any],
        on_error: ErrorHandler | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(config, on_error, logger)
        self._started: set[Partition] = set()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="committed")

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        def assigned(consumer: Any, tps: list[TopicPartition]) -> None:
            consumer.incremental_assign([])  # claimed, not started: no offset query, no reset
            listener.on_assigned(_parts(tps))

        def unassign(consumer: Any, tps: list[TopicPartition]) -> list[Partition]:
            gone = _parts(tps)
            started = [TopicPartition(t, p) for t, p in gone if (t, p) in self._started]
            self._started.difference_update(gone)
            consumer.incremental_unassign(started)
            return gone

        self._consumer.subscribe(
            topics,
            on_assign=assigned,
            on_revoke=lambda c, tps: listener.on_revoked(unassign(c, tps)),
            on_lost=lambda c, tps: listener.on_lost(unassign(c, tps)),
        )

    def ask_committed(self, partitions: Sequence[Partition], timeout_s: float) -> Future[Any]:
        """Ask for the group's committed offsets of ``partitions``, one request each in
        helper threads (the loop goes on meanwhile); the future's result is a
        ``CommittedOffsets``. A read_committed consumer asks with ``require_stable`` and
        librdkafka retries while the broker answers UNSTABLE_OFFSET_COMMIT, so a
        partition whose offsets a transaction holds comes back as a timeout: it is
        reported ``unstable`` (one request per partition keeps the others apart)."""
        out: Future[Any] = Future()
        asked = list(partitions)
        futures = [self._pool.submit(self._committed_one, p, timeout_s) for p in asked]

        def combine(_done: Future[Any]) -> None:
            if all(f.done() for f in futures):
                _settle(out, _combine(asked, [f.result() for f in futures]))

        for future in futures:
            future.add_done_callback(combine)
        return out

    def _committed_one(self, p: Partition, timeout_s: float) -> tuple[str, Any]:
        try:
            (tp,) = self._consumer.committed([TopicPartition(*p)], timeout_s)
        except KafkaException as exc:
            problem = from_exception(exc)
            return ("unstable" if "TIMED_OUT" in problem.code else "failed", str(problem))
        except Exception as exc:  # e.g. the consumer closed meanwhile
            return ("failed", f"{type(exc).__name__}: {exc}")
        return _outcome(tp)

    def close(self) -> None:
        """Wait for committed-offset requests in flight, then leave the group."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        super().close()

    def start_at(self, offsets: Mapping[Partition, int | None]) -> None:
        """Start claimed partitions at these offsets (None: the log's beginning)."""
        tps = [
            TopicPartition(t, p, OFFSET_BEGINNING if o is None else o)
            for (t, p), o in offsets.items()
            if (t, p) not in self._started
        ]
        if tps:
            _call(lambda: self._consumer.incremental_assign(tps))
            self._started.update(_parts(tps))

    def started(self) -> set[Partition]:
        return set(self._started)

    def pause(self, partitions: Sequence[Partition]) -> None:
        """Stop fetching started partitions (messages already fetched are dropped)."""
        tps = [TopicPartition(t, p) for t, p in partitions if (t, p) in self._started]
        if tps:
            _call(lambda: self._consumer.pause(tps))

    def resume_at(self, offsets: Mapping[Partition, int | None]) -> None:
        """Seek paused started partitions to ``offsets`` (None: the beginning), fetch again."""
        tps = [
            TopicPartition(t, p, OFFSET_BEGINNING if o is None else o)
            for (t, p), o in offsets.items()
            if (t, p) in self._started
        ]
        for tp in tps:
            self._seek(tp)
        if tps:
            _call(lambda: self._consumer.resume(tps))


class OffsetsAdmin:
    """Admin requests about offsets: the group's committed offsets (stable) and the
    partitions' last stable offsets against their high watermarks."""

    def __init__(self, config: Mapping[str, Any], group: str) -> None:
        self._config = dict(config)
        self._admin = AdminClient(self._config)
        self.group = group
        self._timeouts = 0

    def _client(self) -> AdminClient:
        """The admin client, replaced after ``REPLACE_AFTER_TIMEOUTS`` requests in a row
        timed out: after a broker restart a client can keep a dead connection's state
        (as producers do, librdkafka#5511) while the broker answers others."""
        if self._timeouts >= REPLACE_AFTER_TIMEOUTS:
            self._admin = AdminClient(self._config)
            self._timeouts = 0
        return self._admin

    def _count(self, exc: BaseException | None) -> None:
        timed_out = isinstance(exc, KafkaFailure) and "TIMED_OUT" in exc.code
        self._timeouts = self._timeouts + 1 if timed_out else 0

    def ask_committed(self, partitions: Sequence[Partition], timeout_s: float) -> Future[Any]:
        """Ask for the group's committed offsets of ``partitions`` with ``require_stable``;
        the future's result is a ``CommittedOffsets`` (or a ``KafkaFailure``)."""
        request = ConsumerGroupTopicPartitions(
            self.group, [TopicPartition(t, p) for t, p in partitions]
        )
        out: Future[Any] = Future()
        try:
            futures = self._client().list_consumer_group_offsets(
                [request], require_stable=True, request_timeout=timeout_s
            )
        except Exception as exc:  # a refused request becomes a failed answer
            out.set_exception(exc)
            return out
        asked = set(partitions)

        def answered(done: Future[Any]) -> None:
            try:
                found = done.result()
            except Exception as exc:
                problem = from_exception(exc) if isinstance(exc, KafkaException) else exc
                self._count(problem)
                _settle(out, error=problem)
                return
            self._count(None)
            _settle(out, _committed(found.topic_partitions, asked))

        futures[self.group].add_done_callback(answered)
        # After a broker restart an admin request was seen never to complete, its
        # request timeout notwithstanding: give up on it, and on the client.
        timer = threading.Timer(2 * timeout_s + 1, self._no_answer, args=(out,))
        timer.daemon = True
        timer.start()
        return out

    def _no_answer(self, out: Future[Any]) -> None:
        if not out.done():
            self._timeouts = REPLACE_AFTER_TIMEOUTS
            _settle(out, error=KafkaFailure(FailureKind.RETRIABLE, "_TIMED_OUT", "no answer"))

    def stable_and_end(
        self, partitions: Sequence[Partition], timeout_s: float
    ) -> dict[Partition, tuple[int, int]]:
        """(last stable offset, high watermark) per partition; the LSO is the first offset
        of the oldest open transaction, or the high watermark when none is open.
        KafkaFailure when the broker does not answer within ``timeout_s``."""
        try:
            ends = [self._list(partitions, level, timeout_s) for level in _LEVELS]
        except KafkaFailure as exc:
            self._count(exc)
            raise
        self._count(None)
        return {p: (ends[0][p], ends[1][p]) for p in partitions if p in ends[0] and p in ends[1]}

    def _list(
        self, partitions: Sequence[Partition], level: IsolationLevel, timeout_s: float
    ) -> dict[Partition, int]:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        specs = {TopicPartition(t, p): latest for t, p in partitions}
        futures = _call(
            lambda: self._client().list_offsets(
                specs, isolation_level=level, request_timeout=timeout_s
            )
        )
        out: dict[Partition, int] = {}
        for tp, future in futures.items():
            try:
                found = _call(partial(future.result, timeout=2 * timeout_s + 1))
            except FutureTimeout:  # see ask_committed: a request that never completes
                self._timeouts = REPLACE_AFTER_TIMEOUTS
                raise KafkaFailure(FailureKind.RETRIABLE, "_TIMED_OUT", "no answer") from None
            out[(tp.topic, tp.partition)] = int(found.offset)
        return out

    def partition_count(self, topic: str, timeout_s: float) -> int | None:
        """Partitions of ``topic`` (None: no such topic or no answer)."""
        try:
            meta = self._client().list_topics(topic, timeout=timeout_s).topics.get(topic)
        except Exception:
            return None
        return None if meta is None or meta.error is not None else len(meta.partitions)


_LEVELS = (IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED)


def _settle(out: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Complete ``out`` unless it already is (an answer after giving up is dropped)."""
    try:
        if error is not None:
            out.set_exception(error)
        else:
            out.set_result(result)
    except InvalidStateError:
        pass


def _outcome(tp: TopicPartition) -> tuple[str, Any]:
    """One partition of an OffsetFetch answer: (offset|missing|unstable|failed, value)."""
    error = tp.error
    if error is not None and error.code() == KafkaError.UNSTABLE_OFFSET_COMMIT:
        return ("unstable", None)
    if error is not None:
        return ("failed", f"{error.name()}: {error.str()}")
    if tp.offset == OFFSET_INVALID or tp.offset < 0:
        return ("missing", None)
    return ("offset", tp.offset)


def _combine(asked: Sequence[Partition], outcomes: Sequence[tuple[str, Any]]) -> CommittedOffsets:
    answer = CommittedOffsets()
    for p, (kind, value) in zip(asked, outcomes, strict=True):
        if kind == "offset":
            answer.offsets[p] = value
        elif kind == "missing":
            answer.missing.append(p)
        elif kind == "unstable":
            answer.unstable.append(p)
        else:
            answer.failed[p] = value
    return answer


def _committed(found: Sequence[TopicPartition], asked: set[Partition]) -> CommittedOffsets:
    mine = [tp for tp in found if (tp.topic, tp.partition) in asked]
    answer = _combine([(tp.topic, tp.partition) for tp in mine], [_outcome(tp) for tp in mine])
    for key in sorted(asked - {(tp.topic, tp.partition) for tp in mine}):
        answer.failed[key] = "no answer for this partition"
    return answer


class FallbackAsker:
    """Committed offsets from the admin client (fast: UNSTABLE comes back at once), and
    from the consumer's own fetch for the next request whenever the admin's failed as a
    whole (after a broker restart the admin's requests were seen to time out for minutes
    while the consumer's worked)."""

    def __init__(self, admin: OffsetsAdmin, consumer: ExplicitStartConsumer) -> None:
        self.admin = admin
        self.consumer = consumer
        self._admin_failed = False

    def ask_committed(self, partitions: Sequence[Partition], timeout_s: float) -> Future[Any]:
        if self._admin_failed:
            self._admin_failed = False
            return self.consumer.ask_committed(partitions, timeout_s)
        future = self.admin.ask_committed(partitions, timeout_s)
        future.add_done_callback(self._note)
        return future

    def _note(self, done: Future[Any]) -> None:
        self._admin_failed = done.exception() is not None

    def stable_and_end(
        self, partitions: Sequence[Partition], timeout_s: float
    ) -> dict[Partition, tuple[int, int]]:
        return self.admin.stable_and_end(partitions, timeout_s)

    def partition_count(self, topic: str, timeout_s: float) -> int | None:
        return self.admin.partition_count(topic, timeout_s)


def consumer_offsets_partition(group: str, partitions: int = 50) -> int:
    """The ``__consumer_offsets`` partition holding ``group``'s offsets: Java's
    ``abs(group.hashCode()) % partitions`` (Kafka's GroupCoordinator.partitionFor)."""
    data = group.encode("utf-16-be")
    h = 0
    for unit in struct.unpack(f">{len(data) // 2}H", data):
        h = (31 * h + unit) & 0xFFFFFFFF
    signed = h - (1 << 32) if h & 0x80000000 else h
    return (0 if signed == -(1 << 31) else abs(signed)) % partitions  # Kafka's Utils.abs
