"""What every measurement shares: figures, topics, loading events, child processes, waits.

Every wait polls against a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from harness.polling import poll_until as harness_poll_until
from harness.topics import QUIET, create_topic, unique_topic

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
_T = TypeVar("_T")


def default_bootstrap() -> str:
    """The broker: KAFKA_BOOTSTRAP_SERVERS (``make`` sets it), else 127.0.0.1:9092."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


class BenchError(RuntimeError):
    """A run did not finish, or finished with the wrong counts."""


# --- figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One measured quantity over several runs: median, min and max."""

    values: tuple[float, ...]
    unit: str

    @classmethod
    def of(cls, values: Sequence[float], unit: str) -> Figure:
        if not values:
            raise ValueError("a figure needs at least one run")
        return cls(tuple(values), unit)

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def as_json(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.low, "max": self.high, "unit": self.unit,
                "runs": list(self.values)}  # fmt: skip


def poll_until(
    what: str, deadline_s: float, probe: Callable[[], _T | None], every_s: float = 0.02
) -> _T:
    """``harness.polling.poll_until``, failing with BenchError naming ``what``."""
    return harness_poll_until(what, deadline_s, probe, every_s, error=BenchError)


# --- topics and events ------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return unique_topic(f"bench-{prefix}")


class Kafka:
    """The broker under test: topics, loading events, reading counts and end offsets."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
        self._created: list[str] = []

    def reachable(self, timeout_s: float = 5.0) -> bool:
        try:
            return bool(self.admin.list_topics(timeout=timeout_s).brokers)
        except KafkaException:
            return False

    def topic(self, prefix: str, partitions: int = 4) -> str:
        """A fresh topic; every topic made here is deleted by ``cleanup``."""
        return self.topic_named(unique(prefix), partitions)

    def topic_named(self, name: str, partitions: int) -> str:
        create_topic(self.bootstrap, name, partitions)
        self._created.append(name)
        return name

    def cleanup(self) -> None:
        names, self._created = self._created, []
        if names:
            for future in self.admin.delete_topics(names, operation_timeout=30).values():
                with suppress(KafkaException):
                    future.result(timeout=30)

    def load(self, topic: str, values: Sequence[bytes], keys: Sequence[bytes]) -> None:
        """Produce every event (keyed, so partitions fill evenly) and wait for all acks."""
        producer = Producer(
            {"bootstrap.servers": self.bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
             "enable.idempotence": True, "queue.buffering.max.messages": 500_000, **QUIET}
        )  # fmt: skip
        failed: list[KafkaError] = []

        def report(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                failed.append(err)

        for value, key in zip(values, keys, strict=True):
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.05)
        left = producer.flush(120)
        if left or failed:
            raise BenchError(f"loading {topic}: {left} undelivered, {len(failed)} failed")

    def consumer(self, isolation: str = "read_committed", **extra: Any) -> Consumer:
        """A reader that never joins its group (``assign`` only)."""
        return Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": unique("reader"),
             "enable.auto.commit": False, "auto.offset.reset": "earliest",
             "isolation.level": isolation, **QUIET, **extra}
        )  # fmt: skip

    def partitions(self, topic: str) -> list[int]:
        meta = self.admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if meta is None:
            raise BenchError(f"no topic {topic}")
        return sorted(meta.partitions)

    def read(self, topic: str, deadline_s: float = 120) -> list[Any]:
        """Every committed message of ``topic``, up to the end of each partition."""
        extra = {"fetch.max.bytes": 52_428_800, "enable.partition.eof": True}
        consumer = self.consumer("read_committed", **extra)
        partitions = self.partitions(topic)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Any] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + deadline_s
        try:
            while len(at_end) < len(partitions):
                if time.monotonic() > deadline:
                    raise BenchError(f"read {len(messages)} messages of {topic}, no end in sight")
                for m in consumer.consume(10_000, 0.2):
                    error, partition = m.error(), m.partition() or 0
                    if error is None:
                        messages.append(m)
                        at_end.discard(partition)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(partition)
                    else:
                        raise BenchError(f"reading {topic}: {error}")
        finally:
            consumer.close()
        return messages

    def count(self, topic: str) -> int:
        return len(self.read(topic))


class EndWatcher:
    """Samples the summed end offsets of a topic: the high watermark, or with
    ``read_committed`` the last stable offset (it moves when a transaction commits)."""

    def __init__(self, kafka: Kafka, topic: str, isolation: str) -> None:
        self._consumer = kafka.consumer(isolation)
        self._tps = [TopicPartition(topic, p) for p in kafka.partitions(topic)]
        self.samples: list[tuple[float, int]] = []

    def sample(self) -> int:
        total = sum(
            self._consumer.get_watermark_offsets(tp, 5, cached=False)[1] for tp in self._tps
        )
        self.samples.append((time.time(), total))
        return total

    def reached(self, final: int) -> float:
        """Wall time of the first sample at ``final`` (the last commit, within one period)."""
        for at, total in self.samples:
            if total >= final:
                return at
        raise BenchError(f"end offsets never reached {final}")

    def close(self) -> None:
        self._consumer.close()


def events(count: int, seed: int = 7) -> tuple[list[bytes], list[bytes]]:
    """The demo stream's events (values) and their ids (keys)."""
    from examples.stream import generate_events

    values = list(generate_events(count, seed=seed))
    keys = [orjson.loads(v)["event_id"].encode() for v in values]
    return values, keys
