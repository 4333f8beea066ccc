"""`make chaos`: a seeded nemesis soak of the live worker on the local broker (issue 20).

    python tests/integration/chaos.py --seed 1 [--events 200000] [--rate 1000]
        [--workers 3] [--faults 24]

Produces ``--events`` events (1 % invalid) at ``--rate`` per second into 8 partitions
while ``--workers`` exactly-once workers (session 10 s, heartbeat 2 s, transaction
timeout 15 s) score them and the nemesis (`nemesis.py`) takes ``--faults`` steps (24) at
seeded moments over the feeding span, a quarter of them two faults at once. Then it
wakes everything, lets the fleet catch up, stops it, reads the output and the DLQ with
read_committed readers and compares them with research `score` of the same events.
Prints one verdict line with the counts; exit 0 when every valid event has exactly one
record equal to research and every invalid event exactly one dead letter, else 1.

``--cluster`` (`make chaos CHAOS_CLUSTER=1`): against the three-node cluster of
`scripts/kafka-local cluster`, with its faults too (`cluster_nemesis.py`); the workers
serve their metrics, which are sampled, and a line per fault gives what they said.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cluster_nemesis import CLUSTER_KINDS, ClusterNemesis, FleetSampler, fault_report, free_port
from kafka_broker import (
    LocalBroker,
    create_topic,
    delete_topics,
    is_reachable,
    poll_until,
    unique_topic,
)
from kafka_cluster import LocalCluster
from nemesis import Fleet, Nemesis
from worker_harness import (
    Stream,
    Topics,
    WorkerProcess,
    demo_bundle,
    make_stream,
    produce_stream,
    research_records,
)
from worker_verify import GroupWatch, read_predictions, read_with_headers, verify_predictions

KAFKA = (
    "consumer.session.timeout.ms=10000",
    "consumer.heartbeat.interval.ms=2000",
    "producer.transaction.timeout.ms=15000",
)
PARTITIONS = 8


def _feed(
    bootstrap: str, topic: str, stream: Stream, rate: int, done: threading.Event, failed: list[str]
) -> None:
    """Produce ``stream`` in one-second slices of ``rate`` events (an idempotent producer
    rides out broker restarts: each slice may take up to 300 s to be delivered)."""
    start = time.monotonic()
    try:
        for first in range(0, len(stream.lines), rate):
            produce_stream(bootstrap, topic, stream.part(first, first + rate), 300)
            ahead = start + (first + rate) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)  # pacing the feed, not synchronisation
    except Exception as exc:  # the soak stops and says why
        failed.append(f"{type(exc).__name__}: {exc}")
    finally:
        done.set()


def _dlq_verdict(bootstrap: str, topic: str, stream: Stream) -> tuple[int, int, int]:
    """(letters, duplicated, missing) of the dead-letter topic against the invalid events."""
    expected = {f"k{i}".encode() for i, r in enumerate(stream.reasons) if r is not None}
    letters = read_with_headers(bootstrap, topic, len(expected), deadline_s=300)
    keys = Counter(letter.key for letter in letters)
    duplicated = sum(n - 1 for n in keys.values())
    return len(letters), duplicated, len(expected - set(keys))


def soak(args: argparse.Namespace, bootstrap: str, workdir: Path) -> bool:
    """One seeded soak; prints its verdict line, True when it passed."""
    rng = random.Random(args.seed)
    stream = make_stream(workdir, args.events, seed=1000 + args.seed, poison_rate=0.01)
    research = research_records(demo_bundle(), stream, workdir)
    topics = Topics(unique_topic("chaos-in"), unique_topic("chaos-out"), unique_topic("chaos-dlq"))
    for name, count in ((topics.input, PARTITIONS), (topics.output, PARTITIONS), (topics.dlq, 2)):
        create_topic(bootstrap, name, count)
    ports: dict[str, int] = {}
    fleet = Fleet(lambda i: _worker(bootstrap, topics, workdir, i, ports if args.cluster else None))
    base = [f"w{i}" for i in range(args.workers)]
    sampler = FleetSampler(fleet, ports, bootstrap, topics, PARTITIONS)
    nemesis: Nemesis
    if args.cluster:
        cluster = LocalCluster()
        nemesis = ClusterNemesis(rng, fleet, base, cluster, topics, bootstrap, PARTITIONS)
    else:
        broker = LocalBroker()
        managed = broker if broker.manages(bootstrap) else None
        nemesis = Nemesis(rng, fleet, base, managed, topics, bootstrap)
    started = time.monotonic()
    try:
        for instance in base:
            fleet.launch(instance)
        if args.cluster:
            sampler.start()
        _strike_while_feeding(args, bootstrap, topics, stream, rng, nemesis)
        _drain(args, bootstrap, topics, nemesis)
        drained_s = time.monotonic() - started
    finally:
        sampler.stop()
        for w in fleet.all():
            if w.proc.poll() is None:
                w.kill()
    _fault_report(nemesis, sampler)
    ok = _verdict(args, bootstrap, topics, stream, research, nemesis, drained_s)
    if os.environ.get("KAFKA_KEEP_TOPICS") != "1":
        delete_topics(bootstrap, [topics.input, topics.output, topics.dlq])
    return ok


def _fault_report(nemesis: Nemesis, sampler: FleetSampler) -> None:
    """With the cluster: a line per fault of what the workers' metrics said."""
    if not isinstance(nemesis, ClusterNemesis):
        return
    try:
        for line in fault_report(sampler, nemesis.steps):
            print(line, flush=True)
    except Exception as exc:  # the figures are a report: the verdict still counts
        print(f"  fault report failed: {type(exc).__name__}: {exc}", flush=True)


def _worker(
    bootstrap: str, topics: Topics, workdir: Path, instance: str, ports: dict[str, int] | None
) -> WorkerProcess:
    """A worker; with ``ports``, serving its metrics on a fresh port recorded there."""
    extra: list[str] = []
    if ports is not None:
        ports[instance] = free_port()
        extra = ["--metrics-port", str(ports[instance])]
    return WorkerProcess(bootstrap, topics, workdir, instance, *extra, kafka=KAFKA)


def _strike_while_feeding(
    args: argparse.Namespace,
    bootstrap: str,
    topics: Topics,
    stream: Stream,
    rng: random.Random,
    nemesis: Nemesis,
) -> None:
    fed, failed = threading.Event(), []
    feeder = threading.Thread(
        target=_feed, args=(bootstrap, topics.input, stream, args.rate, fed, failed), daemon=True
    )
    nemesis.fleet.workers["w0"].wait_event("assigned", 120)
    span_s = args.events / args.rate
    if isinstance(nemesis, ClusterNemesis):
        # a cluster step blocks for a node's restart (20-40 s here): schedule them over the
        # first 80 % of the feed so the last ones still strike a fleet under load
        span_s *= 0.8
    # the schedule: --faults steps at seeded moments over the feeding span, in order; a
    # step that blocks (a broker restart, a plain member's stay) delays the next ones
    due = sorted(rng.uniform(2, span_s) for _ in range(args.faults))
    started = time.monotonic()
    feeder.start()
    for at in due:
        while time.monotonic() < started + at:
            nemesis.supervise()
            time.sleep(0.5)  # the gap between faults: the schedule, not a synchronisation
        done = nemesis.step()
        print(f"  {time.monotonic() - started:6.1f}s {done}", file=sys.stderr)
    while not fed.is_set():
        nemesis.supervise()
        time.sleep(0.5)  # waiting for the feeder, supervising meanwhile
    nemesis.wake_all()
    if failed:
        raise RuntimeError(f"feeding the input failed: {failed[0]}")


def _drain(args: argparse.Namespace, bootstrap: str, topics: Topics, nemesis: Nemesis) -> None:
    """Wait until the group committed every input offset, then stop the fleet."""
    ends = GroupWatch.ends(bootstrap, topics.input)

    def caught_up() -> bool | None:
        nemesis.supervise()
        # a new admin client each time: one made near a broker restart may keep timing out
        watch = GroupWatch(bootstrap, topics.group, topics.input, PARTITIONS)
        if watch.committed() == ends:
            return True
        time.sleep(1)  # polling pace
        return None

    poll_until("the fleet to catch up", args.drain_s, caught_up)
    for w in nemesis.fleet.workers.values():
        nemesis.exits[w.stop(60)[0]] += 1


def _verdict(
    args: argparse.Namespace,
    bootstrap: str,
    topics: Topics,
    stream: Stream,
    research: dict[str, dict[str, Any]],
    nemesis: Nemesis,
    drained_s: float,
) -> bool:
    records = read_predictions(bootstrap, topics.output, stream.valid, deadline_s=600)
    verdict = verify_predictions(records, research)
    letters, dlq_dup, dlq_missing = _dlq_verdict(bootstrap, topics.dlq, stream)
    ok = (
        verdict.duplicates == 0
        and not (verdict.missing or verdict.mismatched or verdict.unexpected)
        and verdict.records == stream.valid
        and dlq_dup == dlq_missing == 0
    )
    faults = ",".join(f"{k}={n}" for k, n in sorted(nemesis.fleet.counts.items()))
    if isinstance(nemesis, ClusterNemesis):
        counts = nemesis.fleet.counts
        applied = sum(n for k, n in counts.items() if k != "paired")
        on_cluster = sum(counts[k] for k in CLUSTER_KINDS)
        faults += f"; steps={len(nemesis.steps)} faults={applied} cluster_faults={on_cluster}"
    exits = ",".join(f"{k}:{n}" for k, n in sorted(nemesis.exits.items()))
    print(
        f"chaos seed={args.seed} events={args.events} workers={args.workers} faults[{faults}] "
        f"exits[{exits}] operator_aborts={nemesis.operator_aborts}: records={verdict.records}"
        f"/{stream.valid} duplicates={verdict.duplicates} missing={len(verdict.missing)} "
        f"mismatched={len(verdict.mismatched)} unexpected={len(verdict.unexpected)} "
        f"dlq={letters}/{len(stream.reasons) - stream.valid} dlq_duplicates={dlq_dup} "
        f"dlq_missing={dlq_missing} drained_in={drained_s:.0f}s -> {'PASS' if ok else 'FAIL'}",
        flush=True,
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, action="append", help="repeatable (default 1)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=1_000, help="events per second")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--faults", type=int, default=24, help="fault steps over the feed")
    parser.add_argument("--drain-s", type=float, default=900, help="deadline to catch up")
    parser.add_argument(
        "--cluster", action="store_true", help="the three-node cluster's faults too"
    )
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if not is_reachable(bootstrap):
        print(f"chaos: no broker at {bootstrap} (make kafka-up)", file=sys.stderr)
        return 2
    results = []
    for seed in args.seed or [1]:
        run = argparse.Namespace(**{**vars(args), "seed": seed})
        workdir = Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-"))
        results.append(soak(run, bootstrap, workdir))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
