"""The live worker gives research `score`'s outputs bit for bit, whatever the batch size."""

from __future__ import annotations

from pathlib import Path

from kafka_broker import TopicFactory
from worker_harness import (
    Topics,
    WorkerProcess,
    cached_stream,
    produce_stream,
    research_records_async,
    stop_all,
)
from worker_verify import (
    assert_exactly_once,
    read_predictions,
    verify_predictions,
)

BATCH_SIZES = (1, 2, 7, 1000)
EVENTS = 300


def test_every_batch_size_matches_research_score_exactly(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    # poison and nulls mixed in, so batches hold rejects, imputed values and unknown categories
    stream = cached_stream(EVENTS, seed=23, poison_rate=0.1)
    research = research_records_async(stream)
    source = topic_factory(3)
    produce_stream(bootstrap, source, stream)
    runs = {
        size: Topics(input=source, output=topic_factory(2), dlq=topic_factory(1))
        for size in BATCH_SIZES
    }
    workers = [  # one worker (and group) per batch size, all at once
        WorkerProcess(
            bootstrap,
            topics,
            tmp_path,
            f"batch-{size}",
            "--max-batch-events",
            str(size),
            "--max-events",
            str(EVENTS),
        )
        for size, topics in runs.items()
    ]
    try:
        for worker in workers:
            assert worker.wait(240) == 0, worker.log_path.read_text()[-2000:]
    finally:
        stop_all(workers)

    expected = research.result()
    for size, topics in runs.items():
        records = read_predictions(bootstrap, topics.output, stream.valid)
        verdict = verify_predictions(records, expected)  # exact float64 equality of the bodies
        assert_exactly_once(verdict, stream.valid)
        stop = next(w for w in workers if w.instance == f"batch-{size}").events("stop")[0]
        assert stop["reason"] == "max_events"
        assert stop["batches"] >= EVENTS // size  # the batch size really was applied
