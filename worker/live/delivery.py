"""Delivery guarantees: how a scored batch leaves the worker.

``ExactlyOnce``: one Kafka transaction per batch holding the prediction records, the dead
letters and the consumed offsets (``send_offsets_to_transaction`` with the consumer's
group metadata, KIP-447). A read_committed reader sees all of a batch or none of it.
The transactional id is stable per instance, so a restarted replica fences its
predecessor and aborts what it left open at once. Abortable errors abort the
transaction; if the abort itself fails, or the producer hits a fatal non-fencing error,
the producer is recreated (``init_transactions`` with the same id cleans up). Either way
``deliver`` returns False and the loop rewinds the consumer to the batch's first offsets.

``AtLeastOnce``: idempotent producer; the offsets are committed (asynchronously) only once
every message of the batch is confirmed delivered. A failed delivery redoes the batch
(duplicates of what was delivered); a lost commit leaves the batch to be redone by the
next owner.

Fenced or unauthorised: ``RuntimeFailure`` (exit 3). Broker away: retry with backoff,
telling ``Status`` so readiness goes false, until the broker answers or ``Status.check``
gives up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from schemas.errors import RuntimeFailure
from worker.kafka.acl import with_acl
from worker.kafka.producers import IdempotentProducer, TransactionalProducer
from worker.kafka.types import (
    Call,
    FailureKind,
    KafkaFailure,
    Outgoing,
    Partition,
    refused_messages,
)
from worker.logs import EventLog

if TYPE_CHECKING:  # `topics`, `publish`... import no scorer
    from worker.core.events import InputEvent

STEP_S = 5.0
"""Longest single blocking call; between calls the worker checks stop and give-up deadlines."""
GIVE_UP_S = 3 * STEP_S
"""A call still failing retriably after this long gets its client replaced."""
REPORTS_S = 1.0
"""After a failed transaction call, how long to wait for the delivery reports that say
which message failed (an abort cannot finish while they are unserved)."""
MAX_RECREATIONS = 5
"""Producer recreations in a row without a committed batch before giving up."""
STOPPING = (FailureKind.FENCED, FailureKind.AUTH)


class Status(Protocol):
    """What delivery tells the loop, and asks it, while it waits for the broker."""

    def unavailable(self, detail: str) -> None: ...
    def available(self) -> None: ...
    def check(self) -> None:
        """Raise RuntimeFailure when it is time to give up (broker gone too long, stop)."""


class Group(Protocol):
    def group_metadata(self) -> Any: ...
    def commit(self, offsets: dict[Partition, int], asynchronous: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class DeliveryBatch:
    messages: list[Outgoing]
    offsets: dict[Partition, int]
    """Next offset to read per partition, committed with the batch."""
    sources: Sequence[InputEvent] = ()
    """The input event each message was made from, in the order of ``messages`` (a
    refused message names its event without reading its body back)."""


class Delivery(Protocol):
    last_rollback: str
    """Why the last ``deliver`` returned False: a Kafka error name (for metrics)."""
    last_refused: list[KafkaFailure]
    """The messages the broker refused for good in the last ``deliver`` (a rolled-back
    one): producing them again can never succeed."""

    def start(self) -> None: ...
    def deliver(self, batch: DeliveryBatch) -> bool:
        """True: delivered and committed. False: rolled back, rewind and redo the batch."""

    def broker_lost(self) -> None:
        """The loop saw the broker go away (cached connection state is suspect)."""

    def reinit(self, why: str) -> None:
        """Replace the producer now (``worker.live.hanging``: init_transactions again)."""

    def close(self) -> None: ...


class Backoff:
    """Exponential waits between retries: initial, doubled each time, capped."""

    def __init__(
        self, initial_s: float, max_s: float, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._sleep = sleep
        self.next_s = initial_s

    def wait(self) -> None:
        self._sleep(self.next_s)
        self.next_s = min(self.next_s * 2, self.max_s)

    def reset(self) -> None:
        self.next_s = self.initial_s


_P = TypeVar("_P", TransactionalProducer, IdempotentProducer)


class Retrying(Generic[_P]):
    """What both modes share: a producer factory, the group, and the retry loop that
    repeats a call while its failure is retriable."""

    def __init__(
        self,
        make_producer: Callable[[], _P],
        group: Group,
        status: Status,
        log: EventLog,
        backoff: Backoff,
    ) -> None:
        self._make_producer: Callable[[], _P] = make_producer
        self._group = group
        self._producer: _P | None = None
        self.status = status
        self.log = log
        self.backoff = backoff
        self.last_rollback = ""
        self.last_refused: list[KafkaFailure] = []

    def retry(self, what: str, operation: Callable[[float], None]) -> None:
        """librdkafka's transactional calls resume where they left off when called again
        after a retriable timeout; a transaction that expires meanwhile fails the call
        with an abortable or fencing error, which ends the loop. A call still failing
        after ``GIVE_UP_S`` once the broker answers again is taken for a client wedged by
        stale broker state (librdkafka#5511): ``_STUCK``, and the caller replaces it."""
        self.backoff.reset()
        started = time.monotonic()
        while True:
            self.status.check()
            try:
                operation(STEP_S)
            except KafkaFailure as exc:
                if exc.kind != FailureKind.RETRIABLE:
                    raise
                if time.monotonic() - started > GIVE_UP_S:
                    raise KafkaFailure(FailureKind.RETRIABLE, "_STUCK", f"{what}: {exc}") from None
                self.status.unavailable(f"{what}: {exc}")
                self.backoff.wait()
                continue
            self.status.available()
            return

    def dispose(self, producer: TransactionalProducer | IdempotentProducer) -> None:
        """Close a replaced producer without letting a wedged client block the worker: a
        close that does not return within ``STEP_S`` is left running in its thread. A
        fence the close reports still stops the worker."""
        if producer.hung:  # a call still running on it: closing would block
            return
        closing = Call("close", producer.close)
        if closing.wait(STEP_S):
            try:
                closing.result()
            except KafkaFailure as exc:
                stop_on(exc, self.log, "close")
                self.log.error("error", during="close", error=str(exc))


def stop_on(exc: KafkaFailure, log: EventLog, what: str) -> None:
    if exc.kind in STOPPING:
        log.error(
            "fenced" if exc.kind == FailureKind.FENCED else "error", during=what, error=str(exc)
        )
        raise RuntimeFailure(f"{exc.kind.value} during {what}: {exc}") from None


class ExactlyOnce(Retrying[TransactionalProducer]):
    """One transaction per batch (see the module docstring)."""

    _stale = False
    _recreations = 0

    def start(self) -> None:
        """A producer with ``init_transactions`` done; a fresh instance for every attempt,
        so no state cached from before an outage survives (see ``broker_lost``)."""
        self.backoff.reset()
        while True:
            self.status.check()
            producer = self._make_producer()
            try:
                producer.init(STEP_S)
            except KafkaFailure as exc:
                self.dispose(producer)
                stop_on(exc, self.log, "init_transactions")
                if exc.kind != FailureKind.RETRIABLE:
                    raise RuntimeFailure(f"cannot initialise transactions: {exc}") from None
                self.status.unavailable(f"init_transactions: {exc}")
                self.backoff.wait()
                continue
            self.status.available()
            self._producer, self._stale = producer, False
            return

    def broker_lost(self) -> None:
        """The broker went away: replace the producer before the next transaction. After a
        broker restart librdkafka may keep a decommissioned group coordinator cached, and
        ``send_offsets_to_transaction`` then never returns (librdkafka#5511)."""
        self._stale = True

    def reinit(self, why: str) -> None:
        self._replace(self._producer, why)

    def deliver(self, batch: DeliveryBatch) -> bool:
        if self._producer is None or self._stale:
            self._replace(self._producer, "broker was unavailable")
        producer = self._producer
        assert producer is not None
        self.last_refused = []
        try:
            producer.begin()
            producer.send(batch.messages)
            if batch.offsets:
                producer.send_offsets(batch.offsets, self._group.group_metadata(), STEP_S)
            self.retry("commit_transaction", producer.commit)
        except KafkaFailure as exc:
            if not producer.hung:  # serve the delivery reports: the abort needs them too
                producer.flush(REPORTS_S)
            self.last_refused = refused_messages(producer.failures, exc)
            self._roll_back(producer, with_acl(exc, "WRITE", (m.topic for m in batch.messages)))
            return False
        self._recreations = 0
        return True

    def _roll_back(self, producer: TransactionalProducer, exc: KafkaFailure) -> None:
        """Abort an abortable transaction; for anything else start over with a new producer:
        its ``init_transactions`` finishes whatever the old one left (aborts it, or completes
        a commit already under way), and the loop then rewinds to the committed offsets."""
        stop_on(exc, self.log, "transaction")
        self.last_rollback = (producer.failures or [exc])[0].code  # a delivery report's first
        if exc.kind == FailureKind.REBALANCE or "GENERATION" in exc.code or "MEMBER" in exc.code:
            self.log.error("fenced", scope="group", error=str(exc))
        self.log.error("rolled_back", kind=exc.kind.value, error=str(exc))
        if exc.kind == FailureKind.ABORTABLE:
            try:
                self.retry("abort_transaction", producer.abort)
                return
            except KafkaFailure as abort_exc:
                stop_on(abort_exc, self.log, "abort_transaction")
                self.log.error("error", during="abort_transaction", error=str(abort_exc))
        self._replace(producer, exc.code)

    def _replace(self, old: TransactionalProducer | None, why: str) -> None:
        if old is not None:
            self._recreations += 1
            if self._recreations > MAX_RECREATIONS:
                raise RuntimeFailure(
                    f"transactional producer failed {MAX_RECREATIONS} times in a row ({why})"
                )
            self._producer = None
            self.dispose(old)
            self.log.emit("producer_recreated", reason=why, attempt=self._recreations)
        self.start()

    def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            self.dispose(producer)


class AtLeastOnce(Retrying[IdempotentProducer]):
    """Deliver, wait for every delivery report, then commit the offsets."""

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
        self.last_refused = []
        try:
            producer.send(batch.messages)
        except KafkaFailure as exc:
            stop_on(exc, self.log, "produce")
            if not exc.refuses_message:
                raise RuntimeFailure(f"produce failed: {exc}") from None
            self.last_refused = [exc]  # what was queued before it is delivered, then redone
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
            self.last_refused = refused_messages(producer.failures)
            self.log.error("rolled_back", kind=first.kind.value, error=str(first))
            self.last_rollback = first.code
            return False
        return self._commit(batch.offsets)

    def _await_delivery(self, producer: IdempotentProducer) -> bool:
        """Wait for every delivery report; False past ``GIVE_UP_S``."""
        started = time.monotonic()
        while producer.flush(STEP_S) > 0:
            self.status.unavailable("delivery reports outstanding")
            self.status.check()
            if time.monotonic() - started > GIVE_UP_S:
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
                self.log.error("commit_failed", kind=exc.kind.value, error=str(exc))
        return True

    def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            producer.flush(STEP_S)
            self.dispose(producer)
