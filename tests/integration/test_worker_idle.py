"""``--idle-timeout`` after a crash (issue 28, item 1): members of the group killed with
SIGKILL hold their partitions until their sessions expire (45 s by default); a worker
started then must not count that wait as idleness and exit 0 ("drained") while the whole
backlog waits. Idle means: assigned, caught up on every assigned partition, and no event
for the timeout.

``make test`` runs it with 20 s sessions and a 5 s idle timeout over 10,000 events (the
sessions still outlast the timeout four times: a worker counting the wait as idleness
exits with nothing consumed); ``make soak`` with librdkafka's default 45 s sessions, a 15 s
timeout and 40,000 events.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer
from kafka_broker import QUIET, TopicFactory, consume_all
from worker_harness import Topics, WorkerProcess, cached_stream, produce_stream, stop_all


@pytest.mark.parametrize(
    ("events", "idle_s", "session_ms"),
    [
        pytest.param(10_000, 5, 20_000, id="short"),
        # librdkafka's default session, written out
        pytest.param(40_000, 15, 45_000, id="long", marks=pytest.mark.soak),
    ],
)
def test_after_members_were_killed_an_idle_timeout_still_scores_the_whole_backlog(
    bootstrap: str,
    topic_factory: TopicFactory,
    tmp_path: Path,
    events: int,
    idle_s: int,
    session_ms: int,
) -> None:
    # the dead members' sessions outlast the idle timeout
    session = (f"consumer.session.timeout.ms={session_ms}",)
    topics = Topics(topic_factory(3), topic_factory(3), topic_factory(1))
    dead = [
        WorkerProcess(bootstrap, topics, tmp_path, f"dead-{i}", kafka=session) for i in range(3)
    ]
    fresh = None
    try:
        for worker in dead:
            worker.wait_event("assigned", 180)
        for worker in dead:
            worker.kill()  # SIGKILL: no LeaveGroup, the sessions stay until they expire
        stream = cached_stream(events, 28)
        produce_stream(bootstrap, topics.input, stream)
        fresh = WorkerProcess(
            bootstrap, topics, tmp_path, "fresh", "--idle-timeout", str(idle_s), kafka=session
        )
        code = fresh.wait(600)
        stop = fresh.events("stop")[-1]
        assert code == 0, fresh.story()
        assert stop["reason"] == "idle" and stop["consumed"] == events, stop
    finally:
        stop_all([*dead, *([fresh] if fresh else [])])
    records = consume_all(bootstrap, topics.output, stream.valid, deadline_s=120)
    dead_letters = consume_all(bootstrap, topics.dlq)
    assert len(records) + len(dead_letters) == events
    assert len({r.key for r in records}) == len(records) == stream.valid


def test_an_empty_partition_does_not_keep_the_worker_from_idling(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """librdkafka reports no position for a partition nothing was read from: caught up
    must still hold for it (its lag is 0), or ``--idle-timeout`` would never fire."""
    topics = Topics(topic_factory(3), topic_factory(1), topic_factory(1))
    stream = cached_stream(50, 29)
    producer = Producer({"bootstrap.servers": bootstrap, **QUIET})
    for key, value in zip(stream.keys, stream.lines, strict=True):
        producer.produce(topics.input, value, key, partition=0)  # 1 and 2 stay empty
    assert producer.flush(30) == 0
    worker = WorkerProcess(bootstrap, topics, tmp_path, "empty", "--idle-timeout", "5")
    try:
        code = worker.wait(120)
    finally:
        stop_all([worker])
    stop = worker.events("stop")[-1]
    assert code == 0 and stop["reason"] == "idle" and stop["consumed"] == 50, worker.story()
