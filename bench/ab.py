"""Interleaved A/B of ``scoring-worker run`` from two source trees (e.g. a checkout of the
previous commit and this one), on one broker under the same load: run 1 of A, run 1 of
B, run 2 of A... The worker is the end-to-end run of ``bench.e2e``; each tree is put on
the child's ``PYTHONPATH``, so both use this checkout's ``.venv``.

    git worktree add /tmp/before HEAD~3    # or: git archive HEAD~3 | tar -x -C /tmp/before
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.ab /tmp/before .
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from contextlib import nullcontext
from pathlib import Path

import bench.child
from bench import pinning
from bench.common import Kafka, default_bootstrap, events
from bench.e2e import RunResult, Setup, run_once
from bench.suite import BUNDLES, build_bundles


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    p.add_argument("trees", nargs=2, type=Path, help="two source trees (A, then B)")
    p.add_argument("--bundle", choices=sorted(BUNDLES), default="LR")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--avro", action="store_true", help="Avro values (SCHEMA_REGISTRY_URL)")
    p.add_argument("--pin", action="store_true", help="broker and worker on separate cores")
    args = p.parse_args()
    kafka = Kafka(default_bootstrap())
    values, keys = events(args.events)
    runs: dict[Path, list[RunResult]] = {tree.resolve(): [] for tree in args.trees}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp,
            pinning.pinned(kafka.bootstrap) if args.pin else nullcontext(),
        ):
            bundle = build_bundles(Path(tmp), [args.bundle])[args.bundle]
            for _ in range(args.pairs):
                for tree, results in runs.items():
                    bench.child.SOURCE_TREE = tree  # the child imports the worker from this tree
                    setup = Setup(
                        kafka,
                        Path(tmp),
                        values,
                        keys,
                        registry_url=os.environ.get("SCHEMA_REGISTRY_URL"),
                    )
                    result = run_once(setup, "worker", "exactly-once", bundle,
                                      avro=args.avro)  # fmt: skip
                    results.append(result)
                    print(f"{tree}: {_line([result])}", flush=True)
    finally:
        kafka.cleanup()
    for tree, results in runs.items():
        print(f"median of {len(results)}, {tree}: {_line(results)}")


def _line(results: list[RunResult]) -> str:
    rate = statistics.median(r.events_per_s for r in results)
    cpu = statistics.median(r.main_cpu_s / r.events * 1e6 for r in results)
    process = [r.cpu_us_per_event for r in results]
    rss = max(r.max_rss_mib for r in results)
    loads = f"load {min(r.load for r in results):.1f}-{max(r.load for r in results):.1f}"
    return (
        f"{rate:,.0f} events/s, process CPU {statistics.median(process):.2f} us/event "
        f"(min {min(process):.2f}, max {max(process):.2f}; every thread), main thread "
        f"{cpu:.2f} us/event, peak RSS {rss:.0f} MiB, {loads}"
    )


if __name__ == "__main__":
    main()
