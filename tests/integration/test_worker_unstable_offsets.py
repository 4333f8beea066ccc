"""A zombie holding pending offsets, an heir taking over, a plain member joining (issue 20).

Worker A is paused (SIGSTOP) while its transaction holds pending offsets: the group's
committed offsets for its partitions are *unstable*. B takes A's partitions when A's
session expires and waits for those offsets; while it waits, a plain consumer joins the
group and leaves again. librdkafka, left to itself, then started some of B's partitions
from ``auto.offset.reset`` (offset 0 with ``earliest``: duplicates). The worker now
fetches the stable committed offsets itself and starts each partition there.

``UNSTABLE_TRIALS=10`` runs the scenario ten times (seeds 0-9) instead of once.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from group_faults import pause_holding_offsets, plain_member, unstable_partitions
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
    output_progress,
    read_predictions,
    verify_predictions,
)

PARTITIONS = 4
TRANSACTION_TIMEOUT_MS = 20_000
TRIALS = int(os.environ.get("UNSTABLE_TRIALS", "1"))


@pytest.mark.parametrize("seed", range(TRIALS))
def test_heir_starts_at_the_stable_offsets_when_a_member_joins_meanwhile(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, seed: int
) -> None:
    stream = cached_stream(12_000, seed=60 + seed, poison_rate=0.01)
    research = research_records_async(stream)
    topics = Topics(
        input=topic_factory(PARTITIONS), output=topic_factory(PARTITIONS), dlq=topic_factory(1)
    )
    produce_stream(bootstrap, topics.input, stream)
    kafka = (*FAST_GROUP, f"producer.transaction.timeout.ms={TRANSACTION_TIMEOUT_MS}")
    small = ("--max-batch-events", "200")  # each transaction holds several partitions
    zombie = WorkerProcess(bootstrap, topics, tmp_path, "zombie", *small, kafka=kafka)
    workers = [zombie]
    try:
        zombie.wait_event("assigned", 120)
        poll_until(
            "zombie mid-stream",
            120,
            lambda: True if output_progress(bootstrap, topics.output) >= 1_500 else None,
        )
        held = pause_holding_offsets(zombie, bootstrap, topics.group, topics.input, PARTITIONS)
        paused = time.monotonic()
        heir = WorkerProcess(bootstrap, topics, tmp_path, "heir", kafka=kafka)
        workers.append(heir)
        heir.wait_event("assigned", 60)
        still_held = unstable_partitions(bootstrap, topics.group, topics.input, PARTITIONS)
        with plain_member(bootstrap, topics.group, topics.input) as taken:
            poll_until("the plain member to get partitions", 60, lambda: taken or None)
        watch = GroupWatch(bootstrap, topics.group, topics.input, PARTITIONS)
        watch.wait_caught_up(GroupWatch.ends(bootstrap, topics.input), 180)
        caught_up_s = time.monotonic() - paused
        zombie.send(signal.SIGCONT)
        poll_until("the zombie to notice", 60, lambda: _noticed(zombie))
        heir_code, _ = heir.stop()
        zombie_code = zombie.wait(30) if zombie.proc.poll() is not None else zombie.stop()[0]
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.send(signal.SIGCONT)
        stop_all(workers)
    records = read_predictions(bootstrap, topics.output, stream.valid)
    verdict = verify_predictions(records, research.result())
    starts = [e for w in workers for e in w.events("start_offsets")]
    print(
        f"\nFIGURE unstable seed {seed}: held {sorted(held)}, still held at the heir's "
        f"assignment {sorted(still_held)}, plain member took {taken}; caught up "
        f"{caught_up_s:.1f}s after the pause; {verdict.records} records, "
        f"{verdict.duplicates} duplicates, {len(verdict.missing)} missing; zombie exit "
        f"{zombie_code}, heir exit {heir_code}"
    )
    assert verdict.duplicates == 0, f"{verdict.duplicates} duplicates"
    assert verdict.missing == [] and verdict.mismatched == [] and verdict.unexpected == []
    assert verdict.records == stream.valid
    assert heir_code == 0 and zombie_code in (0, 3)
    # the heir itself started every held partition once its offsets were stable (at the
    # committed offset, or at the beginning when the held commit was the first one)
    heir_starts = [e for e in starts if e["instance"] == "heir"]
    started = {k for e in heir_starts for k in [*e["offsets"], *e["from_beginning"]]}
    assert all(f"{topics.input}:{p}" in started for p in held), heir_starts


def _noticed(zombie: WorkerProcess) -> bool | None:
    if zombie.proc.poll() is not None or zombie.events("lost") or zombie.events("rolled_back"):
        return True
    return None
