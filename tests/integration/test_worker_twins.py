"""Two replicas given the same instance id (issue 28, item 2): a Deployment template that
sets ``SCORING_WORKER_INSTANCE_ID``. Exactly-once holds (the newer producer fences the
older one); the fenced replica exits 3 with the documented one line, ``fenced ...``,
naming the cause and the fix, and nothing raw (no SystemError, traceback or warning).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka_broker import TopicFactory, poll_until
from worker_harness import Topics, WorkerProcess, cached_stream, produce_stream, stop_all


@pytest.mark.parametrize("trial", [1, pytest.param(2, marks=pytest.mark.soak)])
def test_the_fenced_twin_says_so_in_one_line(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, trial: int
) -> None:
    topics = Topics(topic_factory(2), topic_factory(2), topic_factory(1))
    produce_stream(bootstrap, topics.input, cached_stream(20_000, 5 + trial))
    small = ("--max-batch-events", "100")
    twins = [WorkerProcess(bootstrap, topics, tmp_path, "twin", *small) for _ in range(2)]
    try:
        fenced = poll_until(
            "one twin to exit",
            180,
            lambda: next((w for w in twins if w.proc.poll() is not None), None),
        )
        code = fenced.wait(30)
        text = fenced.log_path.read_text()
    finally:
        stop_all(twins)
    raw = [line for line in text.splitlines() if not line.startswith("{")]
    assert code == 3, text[-3000:]
    assert len(raw) == 1, raw[:20]  # only our error line besides the JSON log lines
    assert raw[0].startswith("scoring-worker: error: fenced"), raw[0]
    assert "same --instance-id" in raw[0]
    assert "SystemError" not in text and "Traceback" not in text and "Warning" not in text
