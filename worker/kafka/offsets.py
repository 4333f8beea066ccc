"""Where partitions start, decided by the worker: explicit start offsets, and the group's
committed offsets fetched with stable-offset semantics (``worker.kafka.committed``).

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
(``ExplicitStartConsumer.ask_committed``: a consumer's stable-offset fetch, one
partition per request, on reader consumers in helper threads, ``worker.kafka.committed``;
not the admin API, see ``worker.kafka.offsets_admin``) and starts each partition at an
explicit offset (``ExplicitStartConsumer.start_at``).
``auto.offset.reset`` is ``error``: a committed offset outside the log (retention)
surfaces as an ``_AUTO_OFFSET_RESET`` error for that partition instead of a silent jump.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from worker.kafka.clients import GroupConsumer
from worker.kafka.committed import CommittedReader
from worker.kafka.errors import call as _call
from worker.kafka.types import ErrorHandler, Partition, RebalanceListener


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
        try:
            self._reader = CommittedReader(config)
        except BaseException:
            _call(self._consumer.close)
            raise

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
        """Ask for the group's committed offsets of ``partitions``, one request each, on
        reader consumers in helper threads (``worker.kafka.committed``: the loop goes on
        meanwhile); the future's result is a ``CommittedOffsets``. A read_committed
        consumer asks with ``require_stable`` and librdkafka retries while the broker
        answers UNSTABLE_OFFSET_COMMIT, so a partition whose offsets a transaction holds
        comes back as a timeout: it is reported ``unstable`` (one request per partition
        keeps the others apart)."""
        return self._reader.ask(partitions, timeout_s)

    def close(self) -> None:
        """Leave the group, then wait for committed-offset requests in flight (the member
        needs nothing from them: it leaves first, whatever a reader still waits for)."""
        try:
            super().close()
        finally:
            self._reader.close()

    def start_at(self, offsets: Mapping[Partition, int | None]) -> None:
        """Start claimed partitions at these offsets (None: the log's beginning)."""
        tps = [
            TopicPartition(t, p, OFFSET_BEGINNING if o is None else o)
            for (t, p), o in offsets.items()
            if (t, p) not in self._started
        ]
        if tps:
            _call(lambda: self._consumer.incremental_assign(tps))
            for tp in tps:  # the position until a message is consumed (``lags``)
                self._sought[(tp.topic, tp.partition)] = tp.offset
            # a pause (a rollback's rewind) outlives unassignment in librdkafka: a
            # partition lost while paused would otherwise come back paused for good
            _call(lambda: self._consumer.resume(tps))
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
