"""Replicas that derive their own instance ids never share a transactional id.

Two processes on one host, first sharing the lock directory (distinct slots), then each
with its own (as containers with host networking: one hostname, each its own /tmp). Both
score the same topic's partitions side by side; neither is fenced; exactly once holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka_broker import TopicFactory, poll_until
from worker_harness import (
    Topics,
    WorkerProcess,
    cached_stream,
    produce_stream,
    research_records_async,
    stop_all,
)
from worker_verify import GroupWatch, assert_exactly_once, read_predictions, verify_predictions


@pytest.mark.parametrize("layout", ["one-lock-dir", "lock-dir-each"])
def test_two_replicas_with_derived_ids_share_partitions(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, layout: str
) -> None:
    stream = cached_stream(6_000, seed=61, poison_rate=0.02)
    research = research_records_async(stream)
    topics = Topics(input=topic_factory(4), output=topic_factory(4), dlq=topic_factory(1))
    dirs = [tmp_path / "tmp", tmp_path / "tmp"]
    if layout == "lock-dir-each":
        dirs = [tmp_path / "tmp-a", tmp_path / "tmp-b"]
    for d in dirs:
        d.mkdir(exist_ok=True)
    batch = ("--max-batch-events", "200")
    workers = [
        WorkerProcess(bootstrap, topics, tmp_path, name, *batch, derive_id_in=d)
        for name, d in zip("ab", dirs, strict=True)
    ]
    try:
        poll_until("both replicas to hold partitions", 120, lambda: _both_assigned(workers))
        produce_stream(bootstrap, topics.input, stream)
        ends = GroupWatch.ends(bootstrap, topics.input)
        GroupWatch(bootstrap, topics.group, topics.input, 4).wait_caught_up(ends, 180)
        codes = [w.stop()[0] for w in workers]
    finally:
        stop_all(workers)
    ids = [w.events("start")[0]["transactional_id"] for w in workers]
    print(f"\nFIGURE derived ids ({layout}): {ids}")
    assert ids[0] != ids[1]
    assert all(i.startswith(f"{topics.group}-") for i in ids)
    assert codes == [0, 0], [w.log_path.read_text()[-1500:] for w in workers]
    assert not any(w.events("fenced") for w in workers)
    records = read_predictions(bootstrap, topics.output, stream.valid)
    assert_exactly_once(verify_predictions(records, research.result()), stream.valid)


def _both_assigned(workers: list[WorkerProcess]) -> bool | None:
    """True once each worker's latest assignment holds partitions (the group settled)."""
    for w in workers:
        assert w.proc.poll() is None, w.log_path.read_text()[-1500:]
        changes = [e for e in w.lines() if e.get("event") in ("assigned", "revoked")]
        if not changes or not changes[-1].get("assignment"):
            return None
    return True
