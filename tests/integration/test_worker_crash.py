"""SIGKILL at random moments, restart: read_committed output has every valid event once.

``make test`` kills three times through 15,000 events in each delivery mode (every kill
still lands mid-stream: a kill point is at least 1,000 records past the restart);
``make soak`` through 50,000.
"""

from __future__ import annotations

import random
import time
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
from worker_verify import (
    GroupWatch,
    assert_exactly_once,
    input_ends,
    output_progress,
    read_predictions,
    verify_predictions,
)

EVENTS = 15_000
SOAK_EVENTS = 50_000
KILLS = 3


@pytest.mark.parametrize(
    "events", [EVENTS, pytest.param(SOAK_EVENTS, marks=pytest.mark.soak)], ids=["short", "long"]
)
@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_sigkill_three_times_then_restart(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, delivery: str, events: int
) -> None:
    stream = cached_stream(events, seed=31, poison_rate=0.02)
    research = research_records_async(stream)
    topics = Topics(input=topic_factory(4), output=topic_factory(4), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, stream)
    ends = input_ends(bootstrap, topics.input)
    rng = random.Random(f"crash-{delivery}")
    # kill points: shares of the output written (committed or not), random, increasing
    points = sorted(rng.uniform(0.1, 0.8) for _ in range(KILLS))
    workers: list[WorkerProcess] = []
    try:
        for point in points:
            worker = WorkerProcess(  # the same instance id, as a restarted container has
                bootstrap,
                topics,
                tmp_path,
                "crash",
                "--max-batch-events",
                "200",
                delivery=delivery,
            )
            workers.append(worker)
            worker.wait_event("assigned", 120)
            # at the random point, and after this worker has itself written something
            at_start = output_progress(bootstrap, topics.output)
            target = max(int(point * stream.valid), at_start + 1_000)
            poll_until(
                f"output to pass {target}",
                180,
                lambda w=worker, t=target: (
                    True if output_progress(bootstrap, topics.output) >= t else _alive(w)
                ),
            )
            worker.kill()
        final = WorkerProcess(bootstrap, topics, tmp_path, "crash", delivery=delivery)
        workers.append(final)
        started = time.monotonic()
        GroupWatch(bootstrap, topics.group, topics.input, 4).wait_caught_up(ends, 240)
        catch_up_s = time.monotonic() - started
        code, stop_s = final.stop()
        assert code == 0
    finally:
        stop_all(workers)

    records = read_predictions(bootstrap, topics.output, stream.valid)
    verdict = verify_predictions(records, research.result())
    print(
        f"\nFIGURE crash {delivery}: kills at {[round(p, 2) for p in points]}, "
        f"{verdict.records} records, {verdict.duplicates} duplicates, "
        f"final catch-up {catch_up_s:.1f}s, SIGTERM exit {stop_s:.2f}s"
    )
    if delivery == "exactly-once":
        assert_exactly_once(verdict, stream.valid)
    else:  # at-least-once: nothing lost, duplicates allowed (and counted above)
        assert verdict.missing == [] and verdict.mismatched == [] and verdict.wrong_key == []
        assert verdict.distinct == stream.valid


def _alive(worker: WorkerProcess) -> None:
    code = worker.proc.poll()
    assert code is None, f"worker exited {code}: {worker.log_path.read_text()[-2000:]}"
