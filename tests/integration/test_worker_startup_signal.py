"""SIGTERM at any moment of start-up: exit 0 with a `stop` line, never death by signal.

The moments: while the process imports its modules, while it loads the bundle, right
after its `start` line (topics checked, transactions initialised) and right after it
joined the group.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from kafka_broker import TopicFactory, poll_until
from worker_harness import Topics, WorkerProcess, stop_all


@pytest.mark.parametrize("moment", ["0.3s", "1.5s", "start", "assigned"])
def test_sigterm_during_start_up_is_a_clean_stop(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, moment: str
) -> None:
    topics = Topics(input=topic_factory(2), output=topic_factory(2), dlq=topic_factory(1))
    worker = WorkerProcess(bootstrap, topics, tmp_path, f"early-{moment}")
    try:
        if moment.endswith("s"):  # the scenario: this long after the process started
            after = float(moment[:-1])
            poll_until(
                f"{after}s since start",
                30,
                lambda: True if time.monotonic() - worker.started >= after else None,
            )
        else:
            worker.wait_event(moment, 120)
        worker.send(signal.SIGTERM)
        code = worker.wait(60)
    finally:
        stop_all([worker])
    lines = worker.lines()
    print(f"\nFIGURE startup sigterm at {moment}: exit {code}, last {lines[-1:]}")
    assert code == 0, worker.log_path.read_text()[-2000:]
    assert lines and lines[-1]["event"] == "stop" and lines[-1]["reason"] == "SIGTERM"
