"""The group's committed offsets, asked while the group member's loop fetches.

Since confluent-kafka 2.16 a consumer's calls from different threads wait for each other.
When the worker asked its own consumer for the committed offsets from helper threads, a
fresh group's worker waited 0.2 to 22 s for its start offsets (some requests never came
back while the loop polled), and a request held by an open transaction would have held
the loop's fetch up to its timeout. The requests now go to reader consumers
(``worker.kafka.committed``); these tests hold the member's loop to its own pace.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka_broker import QUIET, TopicFactory, commit_offsets, poll_until, transactional_producer

from worker.kafka.offsets import ExplicitStartConsumer
from worker.kafka.types import CommittedOffsets, Partition

POLL_LIMIT_S = 1.0
"""The longest one loop step may take: a poll waits at most ~0.1 s when idle."""


class _Assigned:
    def __init__(self) -> None:
        self.partitions: list[Partition] = []

    def on_assigned(self, partitions: list[Partition]) -> None:
        self.partitions.extend(partitions)

    def on_revoked(self, partitions: list[Partition]) -> None:
        pass

    def on_lost(self, partitions: list[Partition]) -> None:
        pass


@contextmanager
def _member(
    bootstrap: str, group: str, topic: str
) -> Iterator[tuple[ExplicitStartConsumer, list[Partition]]]:
    """A worker's consumer in ``group``, its loop polled until it is assigned ``topic``."""
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "error",
        "partition.assignment.strategy": "cooperative-sticky",
        **QUIET,
    }
    consumer = ExplicitStartConsumer(config)
    listener = _Assigned()
    try:
        consumer.subscribe([topic], listener)

        def assigned() -> bool:
            consumer.poll_batch(100, 0.05)
            return bool(listener.partitions)

        poll_until(f"{group} assigned {topic}", 60, assigned)
        yield consumer, sorted(listener.partitions)
    finally:
        consumer.close()


def _answer_while_polling(
    consumer: ExplicitStartConsumer, partitions: list[Partition], timeout_s: float, within_s: float
) -> tuple[CommittedOffsets | None, float]:
    """Ask for the committed offsets and go on polling as the worker's loop does.
    Returns the answer (None: none within ``within_s``) and the longest poll step."""
    asked = consumer.ask_committed(partitions, timeout_s)
    longest = 0.0
    deadline = time.monotonic() + within_s
    while not asked.done() and time.monotonic() < deadline:
        started = time.monotonic()
        consumer.poll_batch(100, 0.05)
        longest = max(longest, time.monotonic() - started)
    return (asked.result() if asked.done() else None), longest


def test_committed_offsets_come_back_at_once_while_the_loop_polls(
    bootstrap: str, topic_factory: TopicFactory
) -> None:
    for trial in range(5):  # a request the loop starved came back in about half the trials
        topic = topic_factory(4)
        group = f"it-committed-{uuid.uuid4().hex[:8]}"
        commit_offsets(bootstrap, group, topic, {1: 7})
        with _member(bootstrap, group, topic) as (consumer, partitions):
            answer, longest = _answer_while_polling(consumer, partitions, 5.0, within_s=3.0)
            members = _members(bootstrap, group)
        assert members == 1, f"trial {trial}: {members} members: a reader joined the group"
        assert answer is not None, f"trial {trial}: no committed offsets within 3 s"
        assert answer.offsets == {(topic, 1): 7}
        assert sorted(answer.missing) == [(topic, 0), (topic, 2), (topic, 3)]
        assert not answer.unstable and not answer.failed
        assert longest < POLL_LIMIT_S, f"trial {trial}: a poll took {longest:.2f} s"


def _members(bootstrap: str, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    (described,) = admin.describe_consumer_groups([group], request_timeout=10).values()
    return len(described.result(timeout=15).members)


@contextmanager
def _pending_offsets(bootstrap: str, group: str, topic: str, partition: int) -> Iterator[None]:
    """Offsets for ``group`` held by a transaction left open while the block runs: a
    stable-offset request for the partition waits (UNSTABLE_OFFSET_COMMIT) until then."""
    outsider = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **QUIET})
    with transactional_producer(bootstrap) as producer:
        producer.begin_transaction()
        offsets = [TopicPartition(topic, partition, 3)]
        producer.send_offsets_to_transaction(offsets, outsider.consumer_group_metadata(), 30)
        try:
            yield
        finally:
            producer.abort_transaction(30)
            outsider.close()


def test_a_request_held_by_a_transaction_does_not_hold_up_the_loop(
    bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = topic_factory(2)
    group = f"it-committed-{uuid.uuid4().hex[:8]}"
    with (
        _pending_offsets(bootstrap, group, topic, 0),
        _member(bootstrap, group, topic) as (consumer, partitions),
    ):
        answer, longest = _answer_while_polling(consumer, partitions, 3.0, within_s=20.0)
    assert answer is not None, "no answer after the request's 3 s timeout"
    assert answer.unstable == [(topic, 0)]
    assert answer.missing == [(topic, 1)]
    assert longest < POLL_LIMIT_S, f"the loop waited {longest:.2f} s for a poll"
