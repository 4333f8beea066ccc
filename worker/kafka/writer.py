"""Writing a file's messages to one topic (`publish`, `replay --output-topic`), keys,
headers, timestamps and partitions kept, through the producer wrapper of
``worker.kafka.producers``.

``transactional`` (`publish`): every message in one transaction, committed by ``finish``:
all or nothing, so a run that failed half way can be run again without duplicating
anything (issue 28). A refused message is a ``Refused`` naming it (its index in the order
sent). ``--broker-timeout`` bounds each wait for the broker; 0: the writer waits for ever
(a transaction still ends at its ``transaction.timeout.ms``, 15 minutes, on the broker).

A commit returns once the transaction coordinator has logged it; the markers that make
its messages readable to ``read_committed`` consumers reach the partitions a moment later.
``finish`` waits for them (the last stable offsets past every message written), so a
`record` or a worker started right after `publish` returns reads the whole file.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message

from schemas.errors import RuntimeFailure
from worker.core.recording import OutgoingMessage
from worker.kafka.acl import needs_acl
from worker.kafka.connection import Connection
from worker.kafka.errors import failure
from worker.kafka.offsets_admin import OffsetsAdmin
from worker.kafka.producers import IdempotentProducer, TransactionalProducer
from worker.kafka.types import FailureKind, KafkaFailure, Outgoing, Partition

PUBLISH_TRANSACTIONAL_PREFIX = "scoring-worker-publish-"
"""`publish`'s transactional ids: this, then a fresh uuid (a prefixed ACL covers them)."""
PUBLISH_TRANSACTION_TIMEOUT_MS = 900_000
"""The broker's default ``transaction.max.timeout.ms``: a whole file is one transaction."""
UNANSWERED = frozenset({"_TIMED_OUT", "_TRANSPORT", "_ALL_BROKERS_DOWN"})
"""Codes of a client call the broker did not answer."""
FLUSH_SLICE_S = 1.0
VISIBLE_POLL_S = 0.05


class Refused(RuntimeFailure):
    """The broker (or the producer's own limit) refused message ``index`` (0-based, in the
    order sent); with ``transactional`` nothing of the run became visible."""

    def __init__(self, index: int, problem: KafkaFailure, size: int, aborted: bool) -> None:
        super().__init__(f"message {index + 1} ({size} bytes): {problem}")
        self.index = index
        self.problem = problem
        self.size = size
        self.aborted = aborted


class TopicWriter:
    """An idempotent producer to one topic; ``transactional``: all or nothing."""

    def __init__(self, connection: Connection, topic: str, transactional: bool = False) -> None:
        self.connection = connection
        self.topic = topic
        self.sent = 0
        self.transactional = transactional
        self._refused: list[tuple[int, int, KafkaFailure]] = []
        self._last: dict[int, int] = {}  # partition -> highest offset delivered
        # librdkafka's 0 is "for ever", as --broker-timeout 0; a transaction's messages
        # can wait no longer than the transaction
        timeout_ms = max(int(connection.timeout_s * 1000), 1000)
        if connection.settings.never_give_up:
            timeout_ms = PUBLISH_TRANSACTION_TIMEOUT_MS if transactional else 0
        forced: dict[str, Any] = {
            "enable.idempotence": True,
            "acks": "all",
            # the Java clients' partitioner: a key goes to the same partition from any client
            "partitioner": "murmur2_random",
            "message.timeout.ms": timeout_ms,
        }
        if transactional:
            forced["transactional.id"] = PUBLISH_TRANSACTIONAL_PREFIX + uuid.uuid4().hex
        config = connection.config("producer", **forced)
        config.setdefault("linger.ms", 5)
        self._producer: IdempotentProducer | TransactionalProducer
        if transactional:
            config.setdefault("transaction.timeout.ms", PUBLISH_TRANSACTION_TIMEOUT_MS)
            # every delivery report: the offsets written are waited for in ``finish``
            self._producer = TransactionalProducer(config, None, None, every_report=True)
        else:
            self._producer = IdempotentProducer(config, None, None)
        connection.reach(self._producer.client, f"producing to {topic}")
        if isinstance(self._producer, TransactionalProducer):
            begun = self._producer
            self._call("starting the transaction", lambda: begun.init(connection.request_s))
            self._call("starting the transaction", begun.begin)

    def _call(self, what: str, operation: Callable[[], Any]) -> Any:
        """``operation``'s value; its KafkaFailure as a RuntimeFailure naming the ACL it
        needs, or as a broker that did not answer."""
        try:
            return operation()
        except KafkaFailure as refused:
            raise self._failure(f"{what} on {self.topic}", refused) from None

    def _failure(self, what: str, refused: KafkaFailure) -> RuntimeFailure:
        if refused.code in UNANSWERED:
            return self.connection.unreachable(what, refused)
        if refused.code == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED":
            acl = needs_acl(
                "WRITE and DESCRIBE", "transactional-id", [PUBLISH_TRANSACTIONAL_PREFIX], True
            )
            return RuntimeFailure(
                f"{what}: auth: {refused}; publish writes in one transaction: {acl}"
            )
        if refused.kind == FailureKind.AUTH:
            acl = needs_acl("WRITE and DESCRIBE", "topic", [self.topic])
            return RuntimeFailure(f"{what}: auth: {refused}; {acl}")
        return RuntimeFailure(f"{what}: {refused}")

    def send(self, messages: Iterable[OutgoingMessage]) -> None:
        """Queue every message (stopping at the first refused one)."""
        last = self._last
        for m in messages:
            if self._refused:
                return
            index, size = self.sent, len(m.value or b"")

            def report(
                error: KafkaError | None, msg: Message, i: int = index, n: int = size
            ) -> None:
                if error is not None:
                    self._refused.append((i, n, failure(error)))
                else:
                    p, offset = msg.partition(), msg.offset()
                    if p is not None and offset is not None and offset > last.get(p, -1):
                        last[p] = offset

            extras: dict[str, Any] = {"headers": list(m.headers), "on_delivery": report}
            if m.partition is not None:
                extras["partition"] = m.partition
            if m.timestamp_ms is not None:
                extras["timestamp"] = m.timestamp_ms
            try:
                self._producer.produce(Outgoing(self.topic, m.value, m.key), **extras)
            except KafkaFailure as exc:
                self._refused.append((index, size, exc))
                return
            self.sent += 1

    def finish(self) -> int:
        """Wait for every delivery report and commit; ``Refused`` (the transaction aborted)
        or RuntimeFailure unless every message was delivered."""
        try:
            left = self._flush()
            if self._refused or left or self._producer.failures:
                self._abort()
            elif isinstance(self._producer, TransactionalProducer):
                commit = self._producer.commit
                self._call("committing", lambda: commit(self.connection.request_s))
                self._wait_visible()
        finally:
            with contextlib.suppress(KafkaFailure):  # the outcome is said below
                self._producer.close()
        if self._refused:
            # The earliest message refused is the cause: a broker's refusal arrives in a
            # delivery report, after later messages may already have failed to queue with
            # _STATE (the transaction was in error by then).
            index, size, problem = min(self._refused, key=lambda f: f[0])
            raise Refused(index, problem, size, self.transactional)
        if self._producer.failures:
            raise self._failure(f"producing to {self.topic}", self._producer.failures[0])
        if left:
            raise self.connection.unreachable(f"producing to {self.topic}", f"{left} undelivered")
        return self.sent

    def _flush(self) -> int:
        """Messages still undelivered when the wait for the broker ended (0: all)."""
        deadline = self.connection.deadline()
        while True:
            wait_s = min(FLUSH_SLICE_S, max(deadline - time.monotonic(), 0.0))
            left = self._producer.flush(wait_s)
            if not left or self._refused or self._producer.failures:
                return left
            if time.monotonic() >= deadline:
                return left

    def _wait_visible(self) -> None:
        """Wait (within ``--broker-timeout``) until the commit markers are in every
        partition written; past that, return: the transaction is committed and becomes
        readable on its own."""
        if not self._last:
            return
        admin = OffsetsAdmin(self.connection.config(None))
        wanted = {(self.topic, p): offset for p, offset in self._last.items()}
        request_s = self.connection.request_s

        def ask() -> Mapping[Partition, tuple[int, int]]:
            try:
                return admin.stable_and_end(list(wanted), request_s)
            except KafkaFailure:  # asked again until the deadline
                return {}

        stable_past(ask, wanted, self.connection.deadline())

    def _abort(self) -> None:
        if isinstance(self._producer, TransactionalProducer):
            # failing that, the transaction times out on the broker: nothing becomes visible
            with contextlib.suppress(KafkaFailure):
                self._producer.abort(self.connection.request_s)


def stable_past(
    ask: Callable[[], Mapping[Partition, tuple[int, int]]],
    last: Mapping[Partition, int],
    deadline: float,
    pause_s: float = VISIBLE_POLL_S,
) -> bool:
    """Ask ``ask`` (partition -> (last stable offset, high watermark)) until every
    partition of ``last`` (partition -> the last offset written) has its last stable
    offset past that offset: True then; False once ``time.monotonic()`` passes
    ``deadline`` first."""
    while True:
        marks = ask()
        if all(p in marks and marks[p][0] > offset for p, offset in last.items()):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause_s)
