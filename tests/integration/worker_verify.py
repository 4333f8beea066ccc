"""Progress and verification for the live-worker tests: offsets, outputs, the verifier."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition
from kafka_broker import (
    QUIET,
    Record,
    consume_all,
    end_offsets,
    group_committed,
    poll_until,
    unique_topic,
)
from worker_harness import WorkerProcess

# --- progress and verification -----------------------------------------------------------


class GroupWatch:
    """Committed offsets of a group on a topic (``kafka_broker.group_committed``)."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        self.bootstrap = bootstrap
        self.group, self.topic, self.partitions = group, topic, partitions

    def committed(self) -> dict[int, int]:
        """Partition -> committed offset; empty while the broker cannot answer or a
        transaction holds the group's offsets."""
        try:
            return group_committed(
                self.bootstrap, self.group, self.topic, range(self.partitions), 5
            )
        except KafkaException:
            return {}

    @staticmethod
    def ends(bootstrap: str, topic: str) -> dict[int, int]:
        return end_offsets(bootstrap, topic)

    def wait_caught_up(self, ends: dict[int, int], deadline_s: float) -> float:
        started = time.monotonic()

        def done() -> bool | None:
            return True if self.committed() == ends else None

        poll_until(f"group {self.group} to commit {ends}", deadline_s, _slow(done))
        return time.monotonic() - started

    def total(self) -> int:
        return sum(self.committed().values())


def _slow(probe: Callable[[], Any]) -> Callable[[], Any]:
    def slower() -> Any:
        result = probe()
        if result is None:
            time.sleep(0.2)
        return result

    return slower


def input_ends(bootstrap: str, topic: str) -> dict[int, int]:
    return end_offsets(bootstrap, topic)


def output_progress(bootstrap: str, topic: str) -> int:
    """Messages written to ``topic`` so far (committed or not): its high watermarks."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("w"), **QUIET})
    try:
        meta = consumer.list_topics(topic, 10).topics[topic]
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in meta.partitions
        )
    finally:
        consumer.close()


def open_transaction(bootstrap: str, topic: str) -> bool:
    """True when ``topic`` has messages past its last stable offset: a transaction is open."""
    return end_offsets(bootstrap, topic) != end_offsets(bootstrap, topic, "read_committed")


def pause_inside_transaction(worker: WorkerProcess, topic: str, bootstrap: str) -> None:
    """SIGSTOP ``worker`` at a moment its transaction on ``topic`` is open."""

    def paused_in_transaction() -> bool | None:
        worker.send(signal.SIGSTOP)
        if open_transaction(bootstrap, topic):
            return True
        worker.send(signal.SIGCONT)
        return None

    poll_until(f"{worker.instance} paused inside a transaction", 60, paused_in_transaction)


@dataclass
class Verdict:
    records: int
    distinct: int
    duplicates: int
    missing: list[str]
    mismatched: list[str]
    unexpected: list[str]
    wrong_key: list[str]


def verify_predictions(records: Sequence[Record], expected: dict[str, dict[str, Any]]) -> Verdict:
    """Each expected event id once, body (without ``source``) equal to the research record."""
    counts: Counter[str] = Counter()
    mismatched, unexpected, wrong_key = [], [], []
    for record in records:
        body = orjson.loads(record.value or b"null")
        event_id = body["event_id"]
        counts[event_id] += 1
        want = expected.get(event_id)
        if want is None:
            unexpected.append(event_id)
            continue
        if {k: v for k, v in body.items() if k != "source"} != {
            k: v for k, v in want.items() if k != "source"
        }:
            mismatched.append(event_id)
        if record.key != f"k{event_id.rsplit('-', 1)[1]}".encode():
            wrong_key.append(event_id)
    missing = [e for e in expected if e not in counts]
    return Verdict(
        records=len(records),
        distinct=len(counts),
        duplicates=sum(n - 1 for n in counts.values()),
        missing=missing[:20],
        mismatched=mismatched[:20],
        unexpected=unexpected[:20],
        wrong_key=wrong_key[:20],
    )


def read_predictions(
    bootstrap: str, topic: str, expected: int, deadline_s: float = 120
) -> list[Record]:
    """The whole topic, read_committed (duplicates up to its end included)."""
    return consume_all(bootstrap, topic, expected, deadline_s=deadline_s)


@dataclass(frozen=True)
class Letter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int


def read_with_headers(
    bootstrap: str, topic: str, expected: int, deadline_s: float = 120
) -> list[Letter]:
    """Every message of ``topic`` (read_committed) with headers and timestamps."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("it-reader"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 50_000_000,
            **QUIET,
        }
    )
    partitions = list(consumer.list_topics(topic, 10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
    out: list[Letter] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + deadline_s
    try:
        while len(at_end) < len(partitions) or len(out) < expected:
            assert time.monotonic() < deadline, f"read {len(out)} of {expected} from {topic}"
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is not None:
                    at_end.add(msg.partition())
                    continue
                at_end.discard(msg.partition())
                headers = {k: v for k, v in (msg.headers() or [])}
                out.append(
                    Letter(
                        msg.partition(),
                        msg.offset(),
                        msg.key(),
                        msg.value(),
                        headers,
                        msg.timestamp()[1],
                    )
                )
    finally:
        consumer.close()
    return out


def assert_exactly_once(verdict: Verdict, expected: int) -> None:
    assert verdict.missing == [], f"missing {verdict.missing}"
    assert verdict.duplicates == 0, f"{verdict.duplicates} duplicates"
    assert verdict.mismatched == [], f"records differ from research: {verdict.mismatched}"
    assert verdict.unexpected == [] and verdict.wrong_key == []
    assert verdict.records == verdict.distinct == expected
