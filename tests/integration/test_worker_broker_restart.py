"""The broker crashes (SIGKILL) or stops (SIGTERM) mid-transaction at a seeded moment and
comes back: the worker must not stall behind a transaction the restart left open.

Either it catches up by itself, or it stops (exit 3) with one line naming the hanging
partitions and the `kafka-transactions.sh` commands; the test then runs those commands,
starts the worker again and it catches up. Either way the output is exactly once.
``make test`` runs one seed; ``BROKER_RESTART_SEEDS=N`` runs N.
"""

from __future__ import annotations

import os
import random
import shlex
import time
from pathlib import Path

import pytest
from kafka_broker import LocalBroker, TopicFactory, poll_until
from transactions_tool import kafka_transactions
from worker_harness import (
    FAST_GROUP,
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

TRANSACTION_TIMEOUT_S = 10
SEEDS = int(os.environ.get("BROKER_RESTART_SEEDS", "1"))


@pytest.fixture
def bootstrap(broker: LocalBroker) -> str:
    """This module's tests stop their broker: they and `topic_factory` use the private one."""
    return broker.bootstrap


@pytest.mark.broker_control
@pytest.mark.timeout(600)  # a broker restart on a loaded machine takes minutes
@pytest.mark.parametrize("seed", range(SEEDS))
def test_no_stall_behind_a_transaction_left_open_by_a_broker_restart(
    bootstrap: str, broker: LocalBroker, topic_factory: TopicFactory, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    stream = cached_stream(6_000, seed=80 + seed, poison_rate=0.01)
    research = research_records_async(stream)
    topics = Topics(input=topic_factory(4), output=topic_factory(4), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, stream)
    kafka = (*FAST_GROUP, f"producer.transaction.timeout.ms={TRANSACTION_TIMEOUT_S * 1000}")
    args = ("--max-batch-events", "20")
    worker = WorkerProcess(bootstrap, topics, tmp_path, "restart", *args, kafka=kafka)
    workers = [worker]
    crash = rng.random() < 0.5
    at = rng.randrange(300, 1_500)
    try:
        worker.wait_event("assigned", 120)
        poll_until(
            "worker mid-stream",
            120,
            lambda: True if output_progress(bootstrap, topics.output) >= at else None,
        )
        (broker.kill if crash else broker.terminate)()
        broker.up()
        restarted = time.monotonic()
        outcome = poll_until(
            "caught up, or stopped with the hanging command",
            4 * TRANSACTION_TIMEOUT_S + 120,
            lambda: _outcome(worker, bootstrap, topics),
        )
        took_s = time.monotonic() - restarted
        if outcome == "stopped":
            _abort_as_told(worker)
            worker = WorkerProcess(bootstrap, topics, tmp_path, "restart", *args, kafka=kafka)
            workers.append(worker)
            ends = GroupWatch.ends(bootstrap, topics.input)
            GroupWatch(bootstrap, topics.group, topics.input, 4).wait_caught_up(ends, 180)
        code, _ = worker.stop()
    finally:
        stop_all(workers)
    records = read_predictions(bootstrap, topics.output, stream.valid, deadline_s=180)
    verdict = verify_predictions(records, research.result())
    print(
        f"\nFIGURE broker restart seed {seed} ({'SIGKILL' if crash else 'SIGTERM'} at {at} "
        f"outputs): {outcome} {took_s:.1f}s after the restart; {verdict.records} records, "
        f"{verdict.duplicates} duplicates, {len(verdict.missing)} missing"
    )
    assert code == 0
    assert_exactly_once(verdict, stream.valid)


def _outcome(worker: WorkerProcess, bootstrap: str, topics: Topics) -> str | None:
    if worker.proc.poll() is not None:
        return "stopped"
    # New clients and end offsets each time: a client made just after a broker restart
    # can keep timing out for minutes, and right after a crash the high watermarks are
    # recovered from a checkpoint and may still lag the log end.
    watch = GroupWatch(bootstrap, topics.group, topics.input, 4)
    return "caught up" if watch.committed() == GroupWatch.ends(bootstrap, topics.input) else None


def _abort_as_told(worker: WorkerProcess) -> None:
    """The worker stopped: it must have said why in one line, with the commands."""
    assert worker.proc.returncode == 3, worker.log_path.read_text()[-2000:]
    last = worker.log_path.read_text().splitlines()[-1]
    assert "hanging transaction on" in last, last
    for command in last.split("abort it with: ", 1)[1].split(" ; "):
        done = kafka_transactions(*shlex.split(command)[1:])
        assert done.returncode == 0, done.stderr[-2000:]
