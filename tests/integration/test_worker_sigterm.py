"""SIGTERM mid-stream: exit 0 within seconds; committed offsets match what was produced."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient
from kafka_broker import QUIET, TopicFactory, poll_until
from worker_harness import (
    Topics,
    WorkerProcess,
    cached_stream,
    produce_stream,
    research_records_async,
    stop_all,
)
from worker_verify import (
    GroupWatch,
    output_progress,
    read_predictions,
    read_with_headers,
    verify_predictions,
)


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_sigterm_commits_the_batch_in_hand_and_leaves(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, delivery: str
) -> None:
    stream = cached_stream(20_000, seed=41, poison_rate=0.02)
    research = research_records_async(stream)
    topics = Topics(input=topic_factory(4), output=topic_factory(4), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, stream)
    worker = WorkerProcess(
        bootstrap, topics, tmp_path, "term", "--max-batch-events", "100", delivery=delivery
    )
    try:
        worker.wait_event("assigned", 120)
        poll_until(
            "worker mid-stream",
            120,
            lambda: True if output_progress(bootstrap, topics.output) >= 3_000 else None,
        )
        code, seconds = worker.stop()
    finally:
        stop_all([worker])
    assert code == 0, worker.log_path.read_text()[-2000:]
    assert seconds < 5, f"SIGTERM took {seconds:.1f}s"
    stop = worker.events("stop")[-1]
    assert stop["reason"] == "SIGTERM"
    assert worker.events("revoked"), "left the group"

    committed = GroupWatch(bootstrap, topics.group, topics.input, 4).committed()
    assert 0 < sum(committed.values()) < len(stream.lines), "stopped mid-stream"
    assert sum(committed.values()) == stop["consumed"]
    inputs = read_with_headers(bootstrap, topics.input, len(stream.lines))
    below = [m for m in inputs if m.offset < committed.get(m.partition, 0)]
    indexes = {int(m.key.decode()[1:]) for m in below if m.key}
    expected_ids = {
        record["event_id"]
        for record in research.result().values()
        if int(record["event_id"].rsplit("-", 1)[1]) in indexes
    }
    records = read_predictions(bootstrap, topics.output, len(expected_ids))
    verdict = verify_predictions(records, {e: research.result()[e] for e in expected_ids})
    # exactly the events below the committed offsets were produced, each once
    assert verdict.missing == [] and verdict.unexpected == [] and verdict.duplicates == 0
    assert verdict.mismatched == []
    rejected = sum(1 for i in indexes if stream.reasons[i] is not None)
    letters = read_with_headers(bootstrap, topics.dlq, rejected)
    assert len(letters) == rejected
    assert {int(letter.key.decode()[1:]) for letter in letters} == {
        i for i in indexes if stream.reasons[i] is not None
    }
    _assert_group_empty(bootstrap, topics.group)
    print(
        f"\nFIGURE sigterm {delivery}: exit 0 in {seconds:.2f}s, committed "
        f"{sum(committed.values())} = consumed {stop['consumed']}, {verdict.records} records"
    )
    assert orjson.loads(records[0].value or b"{}")["source"] is not None


def _assert_group_empty(bootstrap: str, group: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    description = admin.describe_consumer_groups([group])[group].result(10)
    assert description.members == [], "the worker left the group on SIGTERM"
