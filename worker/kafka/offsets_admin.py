"""Admin requests about offsets: the group's committed offsets (stable, answered at once),
the partitions' last stable offsets against their high watermarks, and where a group's
offsets live in ``__consumer_offsets``. ``FallbackAsker`` puts the admin client and the
consumer's own fetch together for ``worker.live.positions``."""

from __future__ import annotations

import struct
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from worker.kafka.errors import call as _call
from worker.kafka.errors import from_exception
from worker.kafka.offsets import ExplicitStartConsumer, combine_outcomes, outcome, settle
from worker.kafka.types import CommittedOffsets, FailureKind, KafkaFailure, Partition

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
                settle(out, error=problem)
                return
            self._count(None)
            settle(out, _committed(found.topic_partitions, asked))

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
            settle(out, error=KafkaFailure(FailureKind.RETRIABLE, "_TIMED_OUT", "no answer"))

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


def _committed(found: Sequence[TopicPartition], asked: set[Partition]) -> CommittedOffsets:
    mine = [tp for tp in found if (tp.topic, tp.partition) in asked]
    answer = combine_outcomes(
        [(tp.topic, tp.partition) for tp in mine], [outcome(tp) for tp in mine]
    )
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
