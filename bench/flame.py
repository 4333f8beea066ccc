"""A flame graph of ``scoring-worker run`` on a backlog, sampled by py-spy.

The worker (the benchmark's own arguments, exactly-once by default) starts under
``py-spy record --threads --idle`` with N events already in a fresh 4-partition topic,
and exits after scoring them (``--max-events``). ``--idle`` keeps the samples of threads
waiting on the broker, so the graph shows where the main thread waits as well as where
it computes. Open the SVG in a browser for the interactive view.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.flame docs/img/x.svg

``--tree DIR`` profiles the worker of another source tree (say ``git archive`` of an
older commit unpacked in DIR), with this checkout's ``.venv``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.common import PYTHON, REPO, Kafka, default_bootstrap, events
from bench.e2e import worker_args
from bench.suite import BUNDLES, build_bundles

PY_SPY = Path(PYTHON).parent / "py-spy"


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.flame", description=__doc__)
    p.add_argument("output", type=Path, help="the SVG to write")
    p.add_argument("--bundle", choices=sorted(BUNDLES), default="LR")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--delivery", choices=["exactly-once", "at-least-once"], default="exactly-once")
    p.add_argument("--rate", type=int, default=250, help="samples per second")
    p.add_argument("--format", choices=["flamegraph", "raw", "speedscope"], default="flamegraph")
    p.add_argument("--tree", type=Path, default=REPO, help="source tree to import the worker from")
    args = p.parse_args()
    kafka = Kafka(default_bootstrap())
    values, keys = events(args.events)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-flame-") as tmp:
            bundle = build_bundles(Path(tmp), [args.bundle])[args.bundle]
            source, sink = kafka.topic("in"), kafka.topic("out")
            kafka.topic_named(f"{sink}-dlq", 1)
            kafka.load(source, values, keys)
            worker = worker_args(bundle, kafka.bootstrap, source, sink, args.delivery, args.events)
            log = Path(tmp) / "worker.log"
            with log.open("wb") as err:
                done = subprocess.run(
                    [str(PY_SPY), "record", "--threads", "--idle", "--rate", str(args.rate),
                     "--format", args.format, "--output", str(args.output), "--", *worker],
                    timeout=900, stdout=subprocess.DEVNULL, stderr=err, check=False,
                    env={**os.environ, "PYTHONPATH": str(args.tree.resolve())},
                )  # fmt: skip
            if done.returncode != 0:
                tail = log.read_text()[-2000:]
                sys.exit(f"py-spy or the worker exited {done.returncode}: {tail}")
            print(f"{args.output}: {kafka.count(sink):,} records out for {args.events:,} events")
            if args.format == "raw":
                for share, where in main_thread_shares(args.output.read_text()):
                    print(f"{share:6.1%}  {where}")
    finally:
        kafka.cleanup()


def main_thread_shares(raw: str, depth: int = 2, top: int = 25) -> list[tuple[float, str]]:
    """Where the main thread's samples go, from py-spy's ``raw`` (collapsed stacks) output:
    the ``depth`` frames under ``Worker._step`` (the loop's one step), else the innermost
    ``depth`` frames (start-up, shutdown). Returns (share of the main thread's samples,
    frames), largest first."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        thread, *called = stack.split(";")
        if "MainThread" not in thread:
            continue
        frames = [f.split(" (")[0] for f in called]
        if "Worker._step" in frames:
            at = frames.index("Worker._step") + 1
            where = " > ".join(frames[at : at + depth])
        else:
            where = "(outside the loop) " + " > ".join(frames[-depth:])
        counts[where] += int(n)
    total = sum(counts.values()) or 1
    return [(n / total, where) for where, n in counts.most_common(top)]


if __name__ == "__main__":
    main()
