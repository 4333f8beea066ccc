"""Admin requests about offsets: the partitions' last stable offsets against their high
watermarks, and where a group's offsets live in ``__consumer_offsets``. ``OffsetsAsker``
puts them together with the consumer's own committed-offset fetch for
``worker.live.positions`` and ``worker.live.hanging``.

The group's committed offsets are never asked through the admin API: librdkafka (2.16
and earlier, librdkafka#5040) dereferences a NULL consumer group in an admin client when
a ListConsumerGroupOffsets answer says NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE, as
it does while the coordinator moves or loads after a broker restart: the process dies of
SIGSEGV (seen here in the broker-restart test). A consumer has a group, so its own fetch
(``ExplicitStartConsumer.ask_committed``) re-queries the coordinator instead."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import Any

from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from worker.kafka.admin import partition_count
from worker.kafka.errors import call as _call
from worker.kafka.offsets import ExplicitStartConsumer
from worker.kafka.types import FailureKind, KafkaFailure, Partition

REPLACE_AFTER_TIMEOUTS = 3
"""Admin requests timing out in a row before the admin client is replaced."""


class OffsetsAdmin:
    """Admin requests about offsets: the partitions' last stable offsets against their
    high watermarks, and partition counts."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = dict(config)
        self._admin = AdminClient(self._config)
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
            return partition_count(self._client(), topic, timeout_s)
        except KafkaFailure:
            return None


_LEVELS = (IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED)


class OffsetsAsker:
    """The group's committed offsets from the consumer's stable-offset fetch (on its
    reader consumers, ``worker.kafka.committed``), and last stable offsets and partition
    counts from the admin client."""

    def __init__(self, admin: OffsetsAdmin, consumer: ExplicitStartConsumer) -> None:
        self.admin = admin
        self.consumer = consumer

    def ask_committed(self, partitions: Sequence[Partition], timeout_s: float) -> Future[Any]:
        """See ``ExplicitStartConsumer.ask_committed``."""
        return self.consumer.ask_committed(partitions, timeout_s)

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
