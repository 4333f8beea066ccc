"""A zombie: paused past the transaction timeout while another member takes its partitions."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from kafka_broker import TopicFactory, poll_until
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
    pause_inside_transaction,
    read_predictions,
    verify_predictions,
)

TRANSACTION_TIMEOUT_MS = 10_000


def test_paused_worker_is_fenced_and_writes_nothing_visible(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    stream = cached_stream(20_000, seed=47, poison_rate=0.02)
    research = research_records_async(stream)
    topics = Topics(input=topic_factory(2), output=topic_factory(2), dlq=topic_factory(1))
    first, rest = stream.part(0, 12_000), stream.part(12_000, len(stream.lines))
    produce_stream(bootstrap, topics.input, first)
    kafka = (*FAST_GROUP, f"producer.transaction.timeout.ms={TRANSACTION_TIMEOUT_MS}")
    small = ("--max-batch-events", "50")
    zombie = WorkerProcess(bootstrap, topics, tmp_path, "zombie", *small, kafka=kafka)
    workers = [zombie]
    try:
        zombie.wait_event("assigned", 120)
        poll_until(
            "zombie mid-stream",
            120,
            lambda: True if output_progress(bootstrap, topics.output) >= 2_000 else None,
        )
        pause_inside_transaction(zombie, topics.output, bootstrap)
        paused = time.monotonic()
        heir = WorkerProcess(bootstrap, topics, tmp_path, "heir", kafka=kafka)
        workers.append(heir)
        watch = GroupWatch(bootstrap, topics.group, topics.input, 2)
        ends = GroupWatch.ends(bootstrap, topics.input)
        watch.wait_caught_up(ends, 120)  # the heir took both partitions and finished them
        takeover_s = time.monotonic() - paused
        # the scenario: paused for longer than the transaction timeout (not a synchronisation)
        pause_s = TRANSACTION_TIMEOUT_MS / 1000 + 3
        poll_until(
            "the pause to outlast the transaction timeout",
            60,
            lambda: True if time.monotonic() - paused > pause_s else None,
        )
        produce_stream(bootstrap, topics.input, rest)  # new events while the zombie wakes up
        zombie.send(signal.SIGCONT)
        # Producer fenced (its epoch was bumped when the coordinator aborted the expired
        # transaction): exit 3 with one clear line. Or the producer recovers by aborting
        # (KIP-360 epoch bump) and the consumer finds its assignment lost (KIP-447 group
        # fencing): the batch is rolled back and the worker rejoins as a new member.
        poll_until("the zombie to notice", 60, lambda: _noticed(zombie))
        ends = GroupWatch.ends(bootstrap, topics.input)
        watch.wait_caught_up(ends, 120)
        exiting = any(e.get("reason") == "error" for e in zombie.events("stop"))
        code = zombie.wait(30) if exiting else zombie.stop()[0]
        heir_code, _ = heir.stop()
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.send(signal.SIGCONT)
        stop_all(workers)
    fenced = zombie.events("fenced") + zombie.events("rolled_back") + zombie.events("lost")
    print(
        f"\nFIGURE zombie: heir caught up {takeover_s:.1f}s after the pause; zombie exit {code}, "
        f"logged {[(e['event'], e.get('error', '')[:60]) for e in fenced]}"
    )
    if code != 0:  # the producer was fenced
        assert code == 3, zombie.log_path.read_text()[-2000:]
        assert "fenced" in zombie.log_path.read_text().splitlines()[-1]  # the one clear line
    else:  # the group fenced it: batch rolled back, assignment lost, rejoined
        assert zombie.events("rolled_back") and zombie.events("lost")
    assert heir_code == 0
    records = read_predictions(bootstrap, topics.output, stream.valid)
    assert_exactly_once(verify_predictions(records, research.result()), stream.valid)


def _noticed(zombie: WorkerProcess) -> bool | None:
    if zombie.proc.poll() is not None or zombie.events("lost"):
        return True
    return True if any(e.get("reason") == "error" for e in zombie.events("stop")) else None
