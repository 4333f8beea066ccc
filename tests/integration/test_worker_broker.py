"""The broker stopped for 10 s mid-stream, then restarted: the worker recovers by itself.

``OUTAGE_TRIALS=10`` runs each delivery mode's scenario ten times instead of once.
``make test`` runs it exactly once (transactions across the outage: the harder path);
at-least-once, whose commits and dead letters ``make test`` covers in the crash, SIGTERM
and dead-letter-limit runs, rides out the outage in ``make soak``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from kafka_broker import LocalBroker, TopicFactory, poll_until
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
    assert_exactly_once,
    output_progress,
    read_predictions,
    verify_predictions,
)

OUTAGE_S = 10.0
TRIALS = int(os.environ.get("OUTAGE_TRIALS", "1"))


@pytest.fixture
def bootstrap(broker: LocalBroker) -> str:
    """This module's tests stop their broker: they and `topic_factory` use the private one."""
    return broker.bootstrap


@pytest.mark.broker_control
@pytest.mark.parametrize("trial", range(TRIALS))
@pytest.mark.parametrize(
    "delivery", ["exactly-once", pytest.param("at-least-once", marks=pytest.mark.soak)]
)
def test_worker_rides_out_a_broker_outage(
    bootstrap: str,
    broker: LocalBroker,
    topic_factory: TopicFactory,
    tmp_path: Path,
    delivery: str,
    trial: int,
) -> None:
    stream = cached_stream(20_000, seed=53, poison_rate=0.02)
    research = research_records_async(stream)
    topics = Topics(input=topic_factory(4), output=topic_factory(4), dlq=topic_factory(1))
    half = len(stream.lines) // 2
    produce_stream(bootstrap, topics.input, stream.part(0, half))
    worker = WorkerProcess(
        bootstrap, topics, tmp_path, "outage", "--max-batch-events", "50", delivery=delivery
    )
    try:
        worker.wait_event("assigned", 120)
        poll_until(
            "worker mid-stream",
            120,
            lambda: True if output_progress(bootstrap, topics.output) >= half // 4 else None,
        )
        broker.down()
        stopped = time.monotonic()
        worker.wait_event("broker_unavailable", 60)  # readiness false while the broker is away
        # the scenario: the broker stays away OUTAGE_S (a fault's length, not a synchronisation)
        poll_until(
            "the outage", 60, lambda: True if time.monotonic() - stopped > OUTAGE_S else None
        )
        assert worker.proc.poll() is None, "no crash while the broker is away"
        broker.restart()
        restarted = time.monotonic()
        worker.wait_event("broker_available", 120)
        recovered_s = time.monotonic() - restarted
        produce_stream(bootstrap, topics.input, stream.part(half, len(stream.lines)))
        ends = GroupWatch.ends(bootstrap, topics.input)
        GroupWatch(bootstrap, topics.group, topics.input, 4).wait_caught_up(ends, 180)
        caught_up_s = time.monotonic() - restarted
        code, _ = worker.stop()
        assert code == 0, worker.log_path.read_text()[-2000:]
    finally:
        stop_all([worker])
    records = read_predictions(bootstrap, topics.output, stream.valid, deadline_s=180)
    verdict = verify_predictions(records, research.result())
    rolled_back = worker.events("stop")[-1]["rolled_back"]
    print(
        f"\nFIGURE outage {delivery}: down {restarted - stopped:.1f}s; worker ready again "
        f"{recovered_s:.1f}s after the restart, caught up after {caught_up_s:.1f}s; "
        f"{rolled_back} batches rolled back, {verdict.duplicates} duplicates"
    )
    try:
        if delivery == "exactly-once":
            assert_exactly_once(verdict, stream.valid)
        else:
            assert verdict.missing == [] and verdict.mismatched == []
            assert verdict.distinct == stream.valid
    except AssertionError as exc:  # one loss seen once (issue 20): keep its whole story
        raise AssertionError(f"{exc}\nthe worker's log:\n{worker.story()}") from None
