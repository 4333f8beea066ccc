"""A challenger on the real broker, through three SIGKILLs and restarts.

The challenger topic, read_committed, holds each valid event exactly once, equal to
`score` with the challenger bundle; the champion topic holds the same bytes per event as
a run of the same input without challengers; the DLQ holds each rejected event once.
``make test`` kills through 8,000 events (a kill point is a random share of the output and
at least 500 records past the restart: every kill lands mid-stream); ``make soak``
through 20,000.
"""

from __future__ import annotations

import functools
import random
import tempfile
import time
from pathlib import Path

import pytest
from kafka_broker import Record, TopicFactory, consume_all, poll_until
from worker_harness import (
    REPO,
    Topics,
    WorkerProcess,
    cached_stream,
    produce_stream,
    research_records,
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

from model_bundles.build import build_from_config

EVENTS = 8_000
SOAK_EVENTS = 20_000
KILLS = 3


@functools.cache
def hgb_bundle() -> Path:
    out = Path(tempfile.mkdtemp(prefix="sw-bundle-")) / "hgb"
    penguins = REPO / "examples" / "penguins"
    build_from_config(penguins / "config-hgb.toml", penguins / "penguins.csv", out)
    return out


@pytest.mark.parametrize(
    "events", [EVENTS, pytest.param(SOAK_EVENTS, marks=pytest.mark.soak)], ids=["short", "long"]
)
def test_challenger_exactly_once_through_sigkills(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, events: int
) -> None:
    stream = cached_stream(events, seed=47, poison_rate=0.02)
    research = research_records_async(stream)
    challenger_research = research_records(hgb_bundle(), stream, tmp_path)
    topics = Topics(input=topic_factory(4), output=topic_factory(4), dlq=topic_factory(1))
    challenger_topic = topic_factory(4)
    produce_stream(bootstrap, topics.input, stream)
    ends = input_ends(bootstrap, topics.input)
    extra = ["--challenger", str(hgb_bundle()), "--challenger-topic", challenger_topic]
    rng = random.Random("challenger")
    points = sorted(rng.uniform(0.1, 0.8) for _ in range(KILLS))
    workers: list[WorkerProcess] = []
    try:
        for point in points:
            worker = WorkerProcess(
                bootstrap, topics, tmp_path, "chal", "--max-batch-events", "200", *extra
            )
            workers.append(worker)
            worker.wait_event("assigned", 120)
            target = max(int(point * stream.valid), output_progress(bootstrap, topics.output) + 500)
            poll_until(
                f"output to pass {target}",
                180,
                lambda w=worker, t=target: (
                    True if output_progress(bootstrap, topics.output) >= t else _alive(w)
                ),
            )
            worker.kill()
        final = WorkerProcess(bootstrap, topics, tmp_path, "chal", *extra)
        workers.append(final)
        GroupWatch(bootstrap, topics.group, topics.input, 4).wait_caught_up(ends, 240)
        assert final.stop()[0] == 0
        summary = final.events("challengers")[0]["challengers"]
        # the same input, no challenger, its own group and outputs: the champion's baseline
        alone_topics = Topics(topics.input, topic_factory(4), topic_factory(1))
        alone = WorkerProcess(bootstrap, alone_topics, tmp_path, "alone")
        workers.append(alone)
        GroupWatch(bootstrap, alone_topics.group, topics.input, 4).wait_caught_up(ends, 240)
        assert alone.stop()[0] == 0
    finally:
        stop_all(workers)

    champion = read_predictions(bootstrap, topics.output, stream.valid)
    assert_exactly_once(verify_predictions(champion, research.result()), stream.valid)
    challenger = read_predictions(bootstrap, challenger_topic, stream.valid)
    verdict = verify_predictions(challenger, challenger_research)
    assert_exactly_once(verdict, stream.valid)
    baseline = read_predictions(bootstrap, alone_topics.output, stream.valid)
    assert _by_id(champion) == _by_id(baseline), "a challenger changed the champion's records"
    letters = consume_all(bootstrap, topics.dlq, events - stream.valid, deadline_s=60)
    assert len(letters) == events - stream.valid, "each rejected event once in the DLQ"
    mine = summary["penguins-species-hgb@1.0.0"]  # the last worker's share, no rejects
    assert 0 < mine["produced"] < verdict.records and mine["rejected"] == {}
    print(
        f"\nFIGURE challenger: kills at {[round(p, 2) for p in points]}, "
        f"{verdict.records} challenger records for {stream.valid} valid events, "
        f"{len(letters)} dead letters at {time.strftime('%H:%M:%S')}"
    )


def _by_id(records: list[Record]) -> dict[bytes | None, bytes | None]:
    return {r.key: r.value for r in records}


def _alive(worker: WorkerProcess) -> None:
    code = worker.proc.poll()
    assert code is None, f"worker exited {code}: {worker.log_path.read_text()[-2000:]}"
