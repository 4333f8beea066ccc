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
from kafka_broker import TopicFactory, unique_topic

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
