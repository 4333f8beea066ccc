"""Bounded reads of a topic for `record` and `replay`. Reading never joins a consumer
group: partitions are assigned explicitly, one after the other (so messages come out by
partition, then offset), nothing is committed, and the ``group.id`` librdkafka insists on
is a throwaway. The end of the range is fixed when it is resolved: the end offsets at that
moment (the last stable offsets, since the reader is ``read_committed``). Every broker
wait has a deadline (``--broker-timeout``; 0: none); running past it is a
``RuntimeFailure`` (exit 3). Writing a topic is ``worker.kafka.writer``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping

from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from schemas.errors import BadInputError, RuntimeFailure
from worker.core.ranges import Bounds, PartitionRange
from worker.core.recording import Header, RecordedMessage, TimestampType
from worker.kafka.acl import missing_topic
from worker.kafka.admin import partition_count
from worker.kafka.connection import Connection
from worker.kafka.errors import failure, from_exception
from worker.kafka.types import FailureKind, KafkaFailure

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
            problem = from_exception(exc) if isinstance(exc, KafkaException) else exc
            raise self.connection.failed(what, problem, acl) from None
        ranges = []
        for p, (low, end) in sorted(marks.items()):
            first = bounds.from_offset if bounds.from_offset is not None else starts.get(p, low)
            ranges.append(PartitionRange(p, max(first, low), end))
        return ranges

    def _watermarks(self) -> dict[int, tuple[int, int]]:
        """Partition -> (low, end): the end is the last stable offset (read_committed)."""
        timeout = self.connection.request_s
        count = partition_count(self._consumer, self.topic, timeout)
        if count is None:
            raise BadInputError(missing_topic(self.topic))
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
        found = self._consumer.offsets_for_times(asked, self.connection.request_s)
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
        deadline = self.connection.deadline()
        done = False
        try:
            while not done:
                batch, done = self._take(self._consume(max_batch), part)
                if batch:
                    deadline = self.connection.deadline()
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
