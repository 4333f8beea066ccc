"""Faults around a consumer group's transactional offsets, for the live-worker tests.

A zombie paused while its transaction holds pending offsets (the group's committed offsets
are then *unstable*: a stable-offset fetch answers UNSTABLE_OFFSET_COMMIT), and a plain
group member that joins for a while (a rebalance while the heir waits for those offsets).
Every wait polls against a deadline.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka_broker import QUIET, poll_until
from worker_harness import WorkerProcess


def unstable_partitions(bootstrap: str, group: str, topic: str, partitions: int) -> set[int]:
    """Partitions whose committed offsets an open transaction holds (empty when the
    broker does not answer)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    wanted = [TopicPartition(topic, p) for p in range(partitions)]
    request = [ConsumerGroupTopicPartitions(group, wanted)]
    try:
        answer = admin.list_consumer_group_offsets(request, require_stable=True, request_timeout=5)
        parts = answer[group].result(10).topic_partitions
    except Exception:
        return set()
    unstable = KafkaError.UNSTABLE_OFFSET_COMMIT
    return {tp.partition for tp in parts if tp.error is not None and tp.error.code() == unstable}


def pause_holding_offsets(
    worker: WorkerProcess, bootstrap: str, group: str, topic: str, partitions: int
) -> set[int]:
    """SIGSTOP ``worker`` at a moment its open transaction holds pending offsets; returns
    the partitions whose offsets are held."""

    def paused() -> set[int] | None:
        worker.send(signal.SIGSTOP)
        held = unstable_partitions(bootstrap, group, topic, partitions)
        if held:
            return held
        worker.send(signal.SIGCONT)
        return None

    return poll_until(f"{worker.instance} paused holding offsets", 60, paused)


@contextmanager
def plain_member(bootstrap: str, group: str, topic: str) -> Iterator[list[int]]:
    """A plain consumer (no commits) in ``group`` while the block runs: its joining and
    leaving are two rebalances. Yields the list of partitions it was assigned (grows)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            **QUIET,
        }
    )
    got: list[int] = []

    def on_assign(c: Consumer, tps: list[TopicPartition]) -> None:
        got.extend(tp.partition for tp in tps)  # it reads them (from "latest"), never commits

    stop = threading.Event()
    consumer.subscribe([topic], on_assign=on_assign)

    def serve() -> None:
        while not stop.is_set():
            consumer.poll(0.2)

    thread = threading.Thread(target=serve, name="plain-member", daemon=True)
    thread.start()
    try:
        yield got
    finally:
        stop.set()
        thread.join(30)
        consumer.close()
