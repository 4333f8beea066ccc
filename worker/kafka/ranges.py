"""Bounded Kafka I/O for `record`, `publish` and `replay`. Reading never joins a consumer
group: partitions are assigned explicitly, one after the other (so messages come out by
partition, then offset), nothing is committed, and the ``group.id`` librdkafka insists on
is a throwaway. The end of the range is fixed when it is resolved: the end offsets at that
moment (the last stable offsets, since the reader is ``read_committed``). Every broker
wait has a deadline; running past it is a ``RuntimeFailure`` (exit 3). `publish` writes
in one transaction (``TopicWriter(transactional=True)``): all or nothing.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from schemas.errors import BadInputError, RuntimeFailure
from worker.core.ranges import Bounds, PartitionRange
from worker.core.recording import Header, OutgoingMessage, RecordedMessage, TimestampType
from worker.kafka.clients import FailureKind, KafkaFailure, failure, partition_count
from worker.kafka.connection import Connection as Connection
from worker.kafka.errors import from_exception

PUBLISH_TRANSACTIONAL_PREFIX = "scoring-worker-publish-"
"""`publish`'s transactional ids: this, then a fresh uuid (a prefixed ACL covers them)."""

POLL_S = 0.1
TIMESTAMP_TYPES: dict[int, TimestampType] = {
    TIMESTAMP_CREATE_TIME: "create_time",
    TIMESTAMP_LOG_APPEND_TIME: "log_append_time",
}


class RangeReader:
    """Reads bounded ranges of one topic, by partition then offset (a context manager)."""

    def __init__(self, connection: Connection, topic: str) -> None:
        self.connection = connection
        self.topic = topic
        config = connection.config(
            "consumer",
            **{
                "group.id": f"scoring-worker-range-{uuid.uuid4().hex}",  # never joined
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            },
        )
        self._consumer = Consumer(config)
        try:
            connection.reach(self._consumer, f"reading {topic}")
        except RuntimeFailure:
            self._consumer.close()
            raise

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._consumer.close()

    def resolve(self, bounds: Bounds) -> list[PartitionRange]:
        """Fix the range now: per partition, the first offset to read and the one to stop at.

        The start is ``from_offset``, or the first offset whose timestamp is at or after
        ``from_time`` (every earlier one is older); the end is the end offset now. The
        time window itself is applied to the messages read (``replay.in_window``).
        """
        try:
            marks = self._watermarks()
            ends = {p: high for p, (_low, high) in marks.items()}
            starts = self._offsets_at(bounds.from_time_ms, ends)
        except (KafkaFailure, KafkaException) as exc:
            what, acl = f"offsets of {self.topic}", f"READ and DESCRIBE on topic {self.topic}"
            raise _not_answered(self.connection, what, exc, acl) from None
        ranges = []
        for p, (low, end) in sorted(marks.items()):
            first = bounds.from_offset if bounds.from_offset is not None else starts.get(p, low)
            ranges.append(PartitionRange(p, max(first, low), end))
        return ranges

    def _watermarks(self) -> dict[int, tuple[int, int]]:
        """Partition -> (low, end): the end is the last stable offset (read_committed)."""
        timeout = self.connection.timeout_s
        count = partition_count(self._consumer, self.topic, timeout)
        if count is None:
            raise BadInputError(_missing(self.topic))
        marks = {}
        for p in range(count):
            found = self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout)
            if found is None:
                raise KafkaException(f"no end offset for {self.topic}[{p}]")
            marks[p] = found
        return marks

    def _offsets_at(self, time_ms: int | None, ends: Mapping[int, int]) -> dict[int, int]:
        """First offset at or after ``time_ms`` per partition (the end offset when none)."""
        if time_ms is None:
            return {}
        asked = [TopicPartition(self.topic, p, time_ms) for p in ends]
        found = self._consumer.offsets_for_times(asked, self.connection.timeout_s)
        offsets = {}
        for tp in found:
            if tp.error is not None:
                raise KafkaException(tp.error)
            offsets[tp.partition] = tp.offset if tp.offset >= 0 else ends[tp.partition]
        return offsets

    def read(
        self, ranges: Iterable[PartitionRange], max_batch: int
    ) -> Iterator[list[RecordedMessage]]:
        """Batches of at most ``max_batch`` messages: partition by partition, in offset order."""
        for part in ranges:
            if part.size:
                yield from self._read_partition(part, max_batch)

    def _read_partition(
        self, part: PartitionRange, max_batch: int
    ) -> Iterator[list[RecordedMessage]]:
        self._consumer.assign([TopicPartition(self.topic, part.partition, part.start)])
        deadline = time.monotonic() + self.connection.timeout_s
        done = False
        try:
            while not done:
                batch, done = self._take(self._consume(max_batch), part)
                if batch:
                    deadline = time.monotonic() + self.connection.timeout_s
                    yield batch
                elif time.monotonic() > deadline:
                    what = f"reading {self.topic}[{part.partition}] up to offset {part.end}"
                    raise self.connection.unreachable(what, "no progress")
        finally:
            self._consumer.unassign()

    def _consume(self, max_batch: int) -> list[Message]:
        try:
            return list(self._consumer.consume(max_batch, POLL_S))
        except KafkaException as exc:
            raise RuntimeFailure(f"reading {self.topic}: {exc}") from None

    def _take(
        self, messages: list[Message], part: PartitionRange
    ) -> tuple[list[RecordedMessage], bool]:
        """The messages inside the range, and whether the partition's range is finished.

        Finished at the last offset of the range, at any offset past it, or at the end
        of the partition past the range (transaction markers occupy offsets no message has).
        """
        batch: list[RecordedMessage] = []
        for msg in messages:
            error, offset = msg.error(), msg.offset()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                problem = failure(error)  # librdkafka retries the others by itself
                if not (problem.broker_down or problem.kind == FailureKind.RETRIABLE):
                    raise RuntimeFailure(f"reading {self.topic}: {problem}")
            elif msg.partition() != part.partition or offset is None:
                continue
            elif offset >= part.end:  # a message past the range, or the end of the partition
                return batch, True
            elif error is None:
                batch.append(recorded(msg))
                if offset == part.end - 1:
                    return batch, True
        return batch, False


def recorded(msg: Message) -> RecordedMessage:
    """A consumed message, detached from librdkafka (timestamp as the live worker reads it)."""
    kind, stamp = msg.timestamp()
    kind_name = TIMESTAMP_TYPES.get(kind) if stamp >= 0 else None
    return RecordedMessage(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        timestamp_ms=stamp if kind_name else None,
        timestamp_type=kind_name,
        key=msg.key(),
        value=msg.value(),
        headers=_headers(msg),
    )


def _headers(msg: Message) -> tuple[Header, ...]:
    found = msg.headers() or ()
    pairs = found.items() if isinstance(found, dict) else found
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in pairs)


# --- topics and producing -----------------------------------------------------------------


def ensure_topic(connection: Connection, topic: str, partitions: int | None) -> int:
    """The topic's partition count, creating it with ``partitions`` when it does not exist."""
    admin = AdminClient(connection.config("admin"))
    connection.reach(admin, f"topic {topic}")
    timeout = connection.timeout_s
    try:
        count = _partition_count(admin, topic, timeout)
        if count is None:
            if partitions is None:
                raise BadInputError(f"{_missing(topic)}; give --partitions N to create it")
            _create(admin, topic, partitions, timeout)
            count = _wait_for_leaders(admin, topic, partitions, timeout)
    except KafkaException as exc:
        acl = f"DESCRIBE on topic {topic} (CREATE, to create it)"
        raise _not_answered(connection, f"topic {topic}", exc, acl) from None
    if partitions is not None and count != partitions:
        raise BadInputError(f"topic {topic} exists with {count} partitions, not {partitions}")
    return count


def _partition_count(admin: AdminClient, topic: str, timeout_s: float) -> int | None:
    """From a metadata request for all topics: asking for one could auto-create it."""
    meta = admin.list_topics(timeout=timeout_s).topics.get(topic)
    return None if meta is None or meta.error is not None else len(meta.partitions)


def _create(admin: AdminClient, topic: str, partitions: int, timeout_s: float) -> None:
    future = admin.create_topics([NewTopic(topic, partitions)], operation_timeout=timeout_s)[topic]
    try:
        future.result(timeout_s)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if not (isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise


def _wait_for_leaders(admin: AdminClient, topic: str, partitions: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        meta = admin.list_topics(topic, timeout_s).topics.get(topic)
        if meta is not None and meta.error is None:
            led = [p for p in meta.partitions.values() if p.leader >= 0 and p.error is None]
            if len(led) == len(meta.partitions) > 0:
                return len(led)
        if time.monotonic() > deadline:
            raise KafkaException(f"topic {topic} has no leader for every partition yet")
        time.sleep(0.05)


def _missing(topic: str) -> str:
    """A topic the metadata does not list: absent, or hidden from this principal (a
    broker lists only the topics it may DESCRIBE)."""
    return (
        f"topic {topic} does not exist, or this principal may not see it "
        f"(needs ACL ALLOW DESCRIBE on topic {topic})"
    )


def _not_answered(
    connection: Connection, what: str, exc: KafkaFailure | KafkaException, acl: str
) -> RuntimeFailure:
    """An authorization error as ``auth: ...; needs ACL ALLOW <acl>``; anything else as a
    broker that did not answer."""
    problem = from_exception(exc) if isinstance(exc, KafkaException) else exc
    if problem.kind == FailureKind.AUTH:
        return RuntimeFailure(f"{what}: auth: {problem}; needs ACL ALLOW {acl}")
    return connection.unreachable(what, exc)


class Refused(RuntimeFailure):
    """The broker (or the producer's own limit) refused message ``index`` (0-based, in the
    order sent); with ``transactional`` nothing of the run became visible."""

    def __init__(self, index: int, problem: KafkaFailure, size: int, aborted: bool) -> None:
        super().__init__(f"message {index + 1} ({size} bytes): {problem}")
        self.index = index
        self.problem = problem
        self.size = size
        self.aborted = aborted


PUBLISH_TRANSACTION_TIMEOUT_MS = 900_000
"""The broker's default ``transaction.max.timeout.ms``: a whole file is one transaction."""


class TopicWriter:
    """An idempotent producer to one topic: keys, headers, timestamps and partitions kept.

    ``transactional``: every message in one transaction, committed by ``finish``: all or
    nothing, so a run that failed half way can be run again without duplicating anything
    (issue 28). A refused message is a ``Refused`` naming it."""

    def __init__(self, connection: Connection, topic: str, transactional: bool = False) -> None:
        self.connection = connection
        self.topic = topic
        self.sent = 0
        self.transactional = transactional
        self._failures: list[tuple[int, int, KafkaError]] = []
        forced: dict[str, Any] = {
            "enable.idempotence": True,
            "acks": "all",
            # the Java clients' partitioner: a key goes to the same partition from any client
            "partitioner": "murmur2_random",
            "message.timeout.ms": max(int(connection.timeout_s * 1000), 1000),
        }
        if transactional:
            forced["transactional.id"] = PUBLISH_TRANSACTIONAL_PREFIX + uuid.uuid4().hex
        config = connection.config("producer", **forced)
        config.setdefault("linger.ms", 5)
        if transactional:
            config.setdefault("transaction.timeout.ms", PUBLISH_TRANSACTION_TIMEOUT_MS)
        self._producer = Producer(config)
        connection.reach(self._producer, f"producing to {topic}")
        if transactional:
            self._call("starting the transaction", self._begin)

    def _begin(self) -> None:
        self._producer.init_transactions(self.connection.timeout_s)
        self._producer.begin_transaction()

    def _call(self, what: str, operation: Any) -> Any:
        try:
            return operation()
        except KafkaException as exc:
            problem = exc.args[0] if exc.args else None
            if isinstance(problem, KafkaError) and problem.code() in (
                KafkaError._TIMED_OUT,
                KafkaError._TRANSPORT,
                KafkaError._ALL_BROKERS_DOWN,
            ):
                raise self.connection.unreachable(f"{what} on {self.topic}", problem) from None
            refused = from_exception(exc)
            if refused.code == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED":
                raise RuntimeFailure(
                    f"{what} on {self.topic}: auth: {refused}; publish writes in one "
                    "transaction: needs ACL ALLOW WRITE and DESCRIBE on transactional-id "
                    f"{PUBLISH_TRANSACTIONAL_PREFIX} (--resource-pattern-type prefixed)"
                ) from None
            if refused.kind == FailureKind.AUTH:
                acl = f"; needs ACL ALLOW WRITE and DESCRIBE on topic {self.topic}"
                raise RuntimeFailure(f"{what} on {self.topic}: auth: {refused}{acl}") from None
            raise RuntimeFailure(f"{what} on {self.topic}: {refused}") from None

    def send(self, messages: Iterable[OutgoingMessage]) -> None:
        """Queue every message (stopping at the first failed delivery report)."""
        for m in messages:
            if self._failures:
                return
            index, size = self.sent, len(m.value or b"")

            def report(
                error: KafkaError | None, _msg: Message, i: int = index, n: int = size
            ) -> None:
                if error is not None:
                    self._failures.append((i, n, error))

            kwargs: dict[str, Any] = {"headers": list(m.headers), "on_delivery": report}
            if m.partition is not None:
                kwargs["partition"] = m.partition
            if m.timestamp_ms is not None:
                kwargs["timestamp"] = m.timestamp_ms
            while True:
                try:
                    self._producer.produce(self.topic, m.value, m.key, **kwargs)
                    break
                except BufferError:  # local queue full: serve delivery reports, then retry
                    self._producer.poll(0.05)
                except KafkaException as exc:  # refused at once (message.max.bytes...)
                    error = exc.args[0] if exc.args else KafkaError(KafkaError._FAIL, str(exc))
                    self._failures.append((index, size, error))
                    return
            self.sent += 1

    def finish(self) -> int:
        """Wait for every delivery report and commit; ``Refused`` (the transaction aborted)
        or RuntimeFailure unless every message was delivered."""
        try:
            left = self._producer.flush(self.connection.timeout_s)
            if self._failures or left:
                self._abort()
            elif self.transactional:
                self._call("committing", lambda: self._producer.commit_transaction())
        finally:
            self._producer.close()
        if self._failures:
            # The earliest message refused is the cause: a broker's refusal arrives in a
            # delivery report, after later messages may already have failed to queue with
            # _STATE (the transaction was in error by then).
            index, size, error = min(self._failures, key=lambda f: f[0])
            raise Refused(index, failure(error), size, self.transactional)
        if left:
            raise self.connection.unreachable(f"producing to {self.topic}", f"{left} undelivered")
        return self.sent

    def _abort(self) -> None:
        if self.transactional:
            # failing that, the transaction times out on the broker: nothing becomes visible
            with contextlib.suppress(KafkaException):
                self._producer.abort_transaction(self.connection.timeout_s)
