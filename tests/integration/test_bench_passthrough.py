"""`make bench`'s ceiling, the passthrough, reads a new topic to the end on the real broker.

It takes the worker's client settings, whose ``auto.offset.reset`` is ``error`` (the
worker looks its start offsets up itself): a passthrough that kept that setting read
nothing and spun until its 600 s deadline, so `make bench` hung in its end-to-end part.
"""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from confluent_kafka import Producer
from kafka_broker import TopicFactory, consume_all, unique_topic
from worker_harness import cached_stream, demo_bundle, produce_stream, research_records_async

from bench.e2e import worker_defaults

EVENTS = 3_000


@pytest.mark.parametrize("mode", ["eos", "alo"])
def test_passthrough_reads_a_new_topic_to_the_end(
    bootstrap: str, topic_factory: TopicFactory, mode: str
) -> None:
    source, sink = topic_factory(4), topic_factory(4)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(EVENTS):
        producer.produce(source, orjson.dumps({"i": i}), str(i).encode())
    assert producer.flush(30) == 0
    done = subprocess.run(
        [sys.executable, "-m", "bench.passthrough", "--bootstrap", bootstrap,
         "--input", source, "--output", sink, "--group", unique_topic("bench-group"),
         "--mode", mode, "--max-events", str(EVENTS),
         "--max-batch-events", str(worker_defaults()[0]), "--deadline-s", "90"],
        capture_output=True, timeout=150, check=False,
    )  # fmt: skip
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, (lines, done.stderr[-2000:])
    assert lines[-1]["event"] == "done" and lines[-1]["count"] == EVENTS


def test_passthrough_with_the_scoring_core_writes_the_research_predictions(
    bootstrap: str, topic_factory: TopicFactory
) -> None:
    """``--bundle``: `make bench`'s passthrough with the scoring core in its loop (the
    least a worker on this core spends per event) scores for real: every record out is
    the research path's prediction for its event."""
    stream = cached_stream(2_000, seed=33)
    research = research_records_async(stream)
    source, sink = topic_factory(4), topic_factory(4)
    produce_stream(bootstrap, source, stream)
    done = subprocess.run(
        [sys.executable, "-m", "bench.passthrough", "--bootstrap", bootstrap,
         "--input", source, "--output", sink, "--group", unique_topic("bench-group"),
         "--mode", "eos", "--max-events", str(len(stream.lines)),
         "--bundle", str(demo_bundle()), "--deadline-s", "90"],
        capture_output=True, timeout=150, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    records = [
        orjson.loads(r.value or b"") for r in consume_all(bootstrap, sink, len(stream.lines))
    ]
    expected = research.result(timeout=300)
    assert len(records) == len(stream.lines) == len(expected)
    for record in records:
        wanted = expected[record["event_id"]]
        assert (record["prediction"], record["scores"], record["model"]) == (
            wanted["prediction"],
            wanted["scores"],
            wanted["model"],
        )
