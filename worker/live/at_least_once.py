"""At-least-once delivery: produce the batch, wait for every delivery report, then commit
the offsets. A crash between the two re-reads the batch (duplicates, never losses).
"""

from __future__ import annotations

import time

from worker.errors import RuntimeFailure
from worker.kafka.acl import with_acl
from worker.kafka.producers import IdempotentProducer
from worker.kafka.types import KafkaFailure, Partition, refused_messages
from worker.live import delivery
from worker.live.delivery import DeliveryBatch, Retrying, stop_on


class AtLeastOnce(Retrying[IdempotentProducer]):
    """Deliver, wait for every delivery report, then commit the offsets."""

    commits_lost = 0
    """Batches delivered whose offsets could not be committed (their events come again)."""

    def start(self) -> None:
        self._producer = self._make_producer()

    def broker_lost(self) -> None:
        """Nothing to do: the idempotent producer has no coordinator state to go stale."""

    def reinit(self, why: str) -> None:
        """Nothing to do: no transactions."""

    def deliver(self, batch: DeliveryBatch) -> bool:
        producer = self._producer
        if producer is None:
            raise RuntimeError("AtLeastOnce.deliver before start")
        producer.failures.clear()
        try:
            producer.send(batch.messages)
        except KafkaFailure as exc:
            stop_on(exc, self.log, "produce")
            if not exc.refuses_message:
                raise RuntimeFailure(f"produce failed: {exc}") from None
            batch.refused.append(exc)  # what was queued before it is delivered, then redone
            self._await_delivery(producer)
            self.log.error("rolled_back", kind=exc.kind.value, error=str(exc))
            self.last_rollback = exc.code
            return False
        if not self._await_delivery(producer):
            self.log.error("rolled_back", kind="retriable", error="_STUCK: delivery reports")
            self.last_rollback = "_STUCK"
            self._producer = self._make_producer()  # a wedged client: start afresh
            self.dispose(producer)
            self.log.emit("producer_recreated", reason="_STUCK")
            return False
        if producer.failures:
            first = with_acl(producer.failures[0], "WRITE", (m.topic for m in batch.messages))
            stop_on(first, self.log, "delivery")
            batch.refused.extend(refused_messages(producer.failures))
            self.log.error("rolled_back", kind=first.kind.value, error=str(first))
            self.last_rollback = first.code
            return False
        return self._commit(batch.offsets)

    def _await_delivery(self, producer: IdempotentProducer) -> bool:
        """Wait for every delivery report; False past ``delivery.GIVE_UP_S``."""
        started = time.monotonic()
        while producer.flush(delivery.STEP_S) > 0:
            self.status.unavailable("delivery reports outstanding")
            self.status.check()
            if time.monotonic() - started > delivery.GIVE_UP_S:
                return False
        self.status.available()
        return True

    def _commit(self, offsets: dict[Partition, int]) -> bool:
        """Commit asynchronously, after delivery. A synchronous commit can block for good
        when the group must rejoin (after a broker restart), since the rejoin needs the next
        poll; a failed commit is reported through the error callback and only means the
        batch's events come again (duplicates, never losses). Closing the consumer waits
        for the commits still in flight."""
        if offsets:
            try:
                self._group.commit(offsets, asynchronous=True)
            except KafkaFailure as exc:
                stop_on(exc, self.log, "commit")
                self.commits_lost += 1
                self.log.error("commit_failed", kind=exc.kind.value, error=str(exc))
        return True

    def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            producer.flush(delivery.STEP_S)
            self.dispose(producer)
