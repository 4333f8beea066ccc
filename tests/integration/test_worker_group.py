"""Several workers in one group: members die, leave and join; nothing is lost or doubled.

The many-changes run goes through its seven membership changes over 25,000 events in
``make test`` (each change still waits for half of what was produced so far to be
scored, so every change lands mid-stream) and over 100,000 in ``make soak``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka_broker import TopicFactory, poll_until
from worker_harness import (
    FAST_GROUP,
    Stream,
    Topics,
    WorkerProcess,
    cached_stream,
    produce_stream,
    research_records_async,
    stop_all,
)
from worker_verify import (
    GroupWatch,
    assert_exactly_once,
    output_progress,
    read_predictions,
    verify_predictions,
)

SHORT_TRANSACTIONS = (*FAST_GROUP, "producer.transaction.timeout.ms=10000")


def _progress_past(bootstrap: str, topic: str, target: int, *alive: WorkerProcess) -> None:
    def probe() -> bool | None:
        for w in alive:
            code = w.proc.poll()
            assert code is None, f"{w.instance} exited {code}: {w.log_path.read_text()[-1500:]}"
        return True if output_progress(bootstrap, topic) >= target else None

    poll_until(f"output of {topic} past {target}", 180, probe)


def test_survivor_takes_over_a_killed_member(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    stream = cached_stream(20_000, seed=41, poison_rate=0.02)
    research = research_records_async(stream)
    topics = Topics(input=topic_factory(4), output=topic_factory(4), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, stream)
    ends = GroupWatch.ends(bootstrap, topics.input)
    batch = ("--max-batch-events", "100")
    # a dead member's open transaction holds back read_committed readers until it times out
    a = WorkerProcess(bootstrap, topics, tmp_path, "a", *batch, kafka=SHORT_TRANSACTIONS)
    b = WorkerProcess(bootstrap, topics, tmp_path, "b", *batch, kafka=SHORT_TRANSACTIONS)
    try:
        a.wait_event("assigned", 120)
        b.wait_event("assigned", 120)
        _progress_past(bootstrap, topics.output, stream.valid // 3, a, b)
        a.kill()
        killed = time.monotonic()
        GroupWatch(bootstrap, topics.group, topics.input, 4).wait_caught_up(ends, 180)
        takeover_s = time.monotonic() - killed
        code, stop_s = b.stop()
        assert code == 0, b.log_path.read_text()[-2000:]
    finally:
        stop_all([a, b])
    assert len(b.events("assigned")) >= 2, "b was given a's partitions"
    records = read_predictions(bootstrap, topics.output, stream.valid)
    verdict = verify_predictions(records, research.result())
    print(
        f"\nFIGURE takeover: a killed -> group caught up in {takeover_s:.1f}s "
        f"(session timeout 6 s, transaction timeout 10 s), b stopped in {stop_s:.2f}s"
    )
    assert_exactly_once(verdict, stream.valid)


CHUNKS = 8


@pytest.mark.parametrize(
    "events", [25_000, pytest.param(100_000, marks=pytest.mark.soak)], ids=["short", "long"]
)
def test_three_workers_through_many_membership_changes(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, events: int
) -> None:
    stream = cached_stream(events, seed=43, poison_rate=0.01)
    research = research_records_async(stream)
    topics = Topics(input=topic_factory(4), output=topic_factory(4), dlq=topic_factory(1))
    chunks = [_slice(stream, i, CHUNKS) for i in range(CHUNKS)]
    produce_stream(bootstrap, topics.input, chunks[0])
    batch = ("--max-batch-events", "250")
    live = {n: WorkerProcess(bootstrap, topics, tmp_path, n, *batch) for n in "abc"}
    everyone = list(live.values())
    changes: list[str] = []

    def join(name: str) -> None:
        live[name] = WorkerProcess(bootstrap, topics, tmp_path, name, *batch)
        everyone.append(live[name])
        live[name].wait_event("assigned", 120)
        changes.append(f"join {name}")

    def kill(name: str) -> None:
        live.pop(name).kill()
        changes.append(f"SIGKILL {name}")

    def term(name: str) -> None:
        worker = live.pop(name)
        code, seconds = worker.stop()
        assert code == 0, worker.log_path.read_text()[-2000:]
        assert seconds < 10
        changes.append(f"SIGTERM {name} ({seconds:.1f}s)")

    steps = [
        lambda: kill("a"),
        lambda: join("a"),
        lambda: term("b"),
        lambda: join("d"),
        lambda: kill("c"),
        lambda: join("c"),
        lambda: term("a"),
    ]
    started = time.monotonic()
    try:
        for w in everyone:
            w.wait_event("start", 120)
        written = 0
        for i, step in enumerate(steps, start=1):
            written += len(chunks[i - 1].lines)
            # some of what was produced so far is scored before the next change
            _progress_past(bootstrap, topics.output, int(written * 0.5), *live.values())
            step()
            produce_stream(bootstrap, topics.input, chunks[i])
        ends = GroupWatch.ends(bootstrap, topics.input)
        GroupWatch(bootstrap, topics.group, topics.input, 4).wait_caught_up(ends, 240)
        for name in list(live):
            term(name)
    finally:
        stop_all(everyone)
    total_s = time.monotonic() - started
    records = read_predictions(bootstrap, topics.output, stream.valid, deadline_s=180)
    verdict = verify_predictions(records, research.result())
    print(
        f"\nFIGURE membership: {len(changes)} changes {changes} over {total_s:.0f}s, "
        f"{verdict.records} records, {verdict.duplicates} duplicates"
    )
    assert len(changes) >= 6
    assert_exactly_once(verdict, stream.valid)


def _slice(stream: Stream, i: int, n: int) -> Stream:
    """Chunk ``i`` of ``n``, keeping each line's key ``k<index in the whole stream>``."""
    size = -(-len(stream.lines) // n)
    return stream.part(i * size, min((i + 1) * size, len(stream.lines)))
