"""``python -m bench``: every measurement of issue 7 against one broker, then the table.

The broker is KAFKA_BOOTSTRAP_SERVERS (``make bench`` sets it), else 127.0.0.1:9092.
Topics are fresh per run and deleted after it. The table is printed and written into
``docs/benchmarks.md`` (``--no-write`` to skip). ``--quick`` is a smoke run (~2 minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from bench import core, pinning, suite
from bench.common import REPO, BenchError, Figure, Kafka, default_bootstrap
from bench.e2e import Kind, Mode, RunResult, worker_defaults
from bench.report import Report

SECTIONS = ("startup", "core", "e2e", "naive", "latency")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--bootstrap", default=default_bootstrap())
    p.add_argument("--events", type=int, help="events per end-to-end run (200,000; quick 20,000)")
    p.add_argument("--repeats", type=int, help="runs per figure (3; quick 1)")
    p.add_argument("--naive-events", type=int, help="events per naive run (2,000; quick 300)")
    p.add_argument("--latency-rate", type=float, default=5000.0, help="events/s offered")
    p.add_argument("--latency-seconds", type=float, help="offered-load duration (30; quick 4)")
    p.add_argument(
        "--latency-batch-age-ms",
        type=int,
        action="append",
        help="also measure latency with this --max-batch-age-ms (repeatable)",
    )
    p.add_argument(
        "--max-batch-events",
        type=int,
        help="batch cap for the worker and the passthrough (default: the worker's)",
    )
    p.add_argument(
        "--kafka-property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka property for the worker and the passthrough (producer./consumer. scoped)",
    )
    p.add_argument(
        "--schema-registry-url",
        default=os.environ.get("SCHEMA_REGISTRY_URL") or None,
        help="Schema Registry for the Avro run (SCHEMA_REGISTRY_URL; make bench starts one)",
    )
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="leave the broker and the measured processes on every core (default: pinned apart)",
    )
    p.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections")
    p.add_argument("--quick", action="store_true", help="small counts, one run each")
    p.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    return p


def _plan(args: argparse.Namespace) -> suite.Plan:
    quick = args.quick
    ages = args.latency_batch_age_ms or []
    return suite.Plan(
        events=args.events or (20_000 if quick else 200_000),
        repeats=args.repeats or (1 if quick else 3),
        naive_events=args.naive_events or (300 if quick else 2_000),
        core_events=10_000 if quick else 50_000,
        sweep=(1, 100, 1000, 5000) if quick else (1, 10, 100, 1000, 5000, 10000),
        latency_rate=args.latency_rate,
        latency_seconds=args.latency_seconds or (4.0 if quick else 30.0),
        latency_ages_ms=(None, *ages),
        batch_events=args.max_batch_events,
        kafka_properties=tuple(args.kafka_property),
        registry_url=args.schema_registry_url,
        pin=not args.no_pin,
        sections=frozenset(args.only or SECTIONS),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = _plan(args)
    kafka = Kafka(args.bootstrap)
    if plan.sections - {"core", "startup"} and not kafka.reachable():
        print(f"bench: error: no broker at {args.bootstrap} (make kafka-up)", file=sys.stderr)
        return 3
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    batch_events, batch_age_ms = worker_defaults()
    settings = {
        "broker": args.bootstrap,
        "runs per figure": str(plan.repeats),
        "--max-batch-events": str(plan.batch_events or batch_events),
        "--max-batch-age-ms (throughput runs)": str(batch_age_ms),
        "--kafka-property": " ".join(plan.kafka_properties) or "none",
    }
    report = Report(command.strip(), settings)
    if args.quick:
        report.extra.append(
            "**Quick run**: small counts and one run each, a smoke test; start-up weighs on"
            " every figure, so the targets are not judged from it."
        )
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            _run(plan, kafka, Path(tmp), report)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    finally:
        kafka.cleanup()
    report.settings["took"] = f"{time.monotonic() - started:.0f} s"
    print(report.markdown())
    if not args.no_write:
        report.write(args.output)
        suite.say(f"written to {args.output}")
    return 0


def _run(plan: suite.Plan, kafka: Kafka, workdir: Path, report: Report) -> None:
    suite.say("building the demo bundles")
    bundles = suite.build_bundles(workdir)
    e2e: dict[tuple[Kind, Mode, str | None], list[RunResult]] = {}
    naive: float | None = None
    cores: dict[str, core.CoreResult] = {}
    p99: dict[int | None, tuple[Figure, Figure]] = {}
    if "startup" in plan.sections:
        suite.run_startup(plan, workdir, bundles, report)
    if "naive" in plan.sections:
        naive = suite.run_naive(plan, kafka, workdir, bundles["LR"], report)
    why_not = pinning.available(kafka.bootstrap) if plan.pin else "--no-pin"
    if why_not is not None:
        report.settings["pinning"] = f"none ({why_not})"
        suite.say(f"not pinned: {why_not}")
    as_given = plan
    with pinning.pinned(kafka.bootstrap) if why_not is None else nullcontext() as pinned:
        cpu = pinned.measured_cpu if pinned is not None else None
        if pinned is not None:
            report.settings["pinning"] = pinned.describe() + "; put back to every core after"
            plan = dataclasses.replace(plan, pinned_note=f", pinned (CPU {cpu})")
            suite.say(report.settings["pinning"])
        if "core" in plan.sections:
            cores = suite.run_core(plan, bundles, report, cpu)
        if "e2e" in plan.sections:
            e2e = suite.run_e2e(plan, kafka, workdir, bundles, report)
    if "latency" in plan.sections:
        # Unpinned, worker and passthrough alike: with the broker's JVM held to one core
        # the paced producer's metadata went stale ("new leader-1 not found in cache")
        # and it gave up with 100,000 events queued, three runs in three (2026-12-07, on
        # main and on 8e99dca alike); the pinned throughput runs are unaffected. Not
        # understood yet: docs/benchmarks.md.
        p99 = suite.run_latency(as_given, kafka, workdir, bundles["LR"], report)
        report.settings["latency pinning"] = "none (the latency runs are never pinned)"
    _verdicts(report, e2e, naive, p99)
    _limits(report, e2e, {name: result.bare.median for name, result in cores.items()})
    _efficiency(report, e2e, cores)


def _median(runs: list[RunResult] | None) -> float | None:
    return Figure.of([r.events_per_s for r in runs], "").median if runs else None


def _verdicts(
    report: Report,
    e2e: dict[tuple[Kind, Mode, str | None], list[RunResult]],
    naive: float | None,
    p99: dict[int | None, tuple[Figure, Figure]],
) -> None:
    """The ratios of medians, and issue 7's targets met or not."""

    def ratio(top: float | None, bottom: float | None) -> float | None:
        return top / bottom if top and bottom else None

    eos = _median(e2e.get(("worker", "exactly-once", "LR")))
    alo = _median(e2e.get(("worker", "at-least-once", "LR")))
    share = ratio(eos, _median(e2e.get(("passthrough", "exactly-once", None))))
    times = ratio(eos, naive)
    report.ratios += [
        ("worker / ceiling, exactly-once, LR", share, "same client settings and batch cap"),
        ("worker / ceiling, at-least-once, LR",
         ratio(alo, _median(e2e.get(("passthrough", "at-least-once", None)))), ""),
        ("worker / naive, exactly-once, LR", times, ""),
        ("worker / naive, at-least-once, LR", ratio(alo, naive), ""),
        ("worker with one challenger (HGB) / without, exactly-once, LR",
         ratio(_median(e2e.get(("worker", "exactly-once", suite.CHALLENGED))), eos),
         "the cost of one more model per batch, and its records"),
        ("worker on Avro values / on JSON values, exactly-once, LR",
         ratio(_median(e2e.get(("worker", "exactly-once", suite.AVRO))), eos),
         "same events, the same run; Avro through the Schema Registry"),
    ]  # fmt: skip
    rss = [r.max_rss_mib for k, runs in e2e.items() if k[0] == "worker" for r in runs]
    _target(report, "exactly-once >= 50% of the ceiling", share, 0.5, "{:.0%}")
    _target(report, "exactly-once >= 200x the naive worker", times, 200, "{:,.0f}x")
    worst = max(rss) if rss else None
    report.targets.append(
        ("peak RSS < 400 MB (any worker run)", None if worst is None else worst * 2**20 < 400e6,
         "n/a" if worst is None else f"{worst:.0f} MiB")
    )  # fmt: skip
    report.targets.append(
        ("peak RSS < 280 MiB (any worker run, issue 18)",
         None if worst is None else worst < 280, "n/a" if worst is None else f"{worst:.0f} MiB")
    )  # fmt: skip
    if None in p99:
        worker, floor = p99[None]
        report.targets.append(
            ("p99 latency <= 50 ms at the offered rate, batch age default (issue 18)",
             worker.median <= 50, f"{worker.median:.0f} ms")
        )  # fmt: skip
        report.targets.append(
            ("p99 latency <= the passthrough's p99 + 25 ms, batch age default (issue 33)",
             worker.median <= floor.median + 25,
             f"{worker.median:.0f} ms vs {floor.median:.0f} + 25 ms")
        )  # fmt: skip
    for age, (figure, _) in p99.items():
        setting = "default" if age is None else f"{age} ms"
        report.targets.append(
            (f"p99 latency < 100 ms at the offered rate, batch age {setting}",
             figure.median < 100, f"{figure.median:.0f} ms")
        )  # fmt: skip


def _limits(
    report: Report,
    e2e: dict[tuple[Kind, Mode, str | None], list[RunResult]],
    bare: dict[str, float],
) -> None:
    """Issue 18: one process against the slower of its two limits, the broker's own
    exactly-once loop (the passthrough) and the model alone at the worker's batch size."""
    ceiling = _median(e2e.get(("passthrough", "exactly-once", None)))
    for name in ("LR", "HGB"):
        worker = _median(e2e.get(("worker", "exactly-once", name)))
        model = bare.get(name)
        limit = min(x for x in (ceiling, model) if x) if ceiling or model else None
        share = worker / limit if worker and limit else None
        which = "passthrough" if limit == ceiling else "bare model"
        report.ratios.append(
            (f"worker / limit, exactly-once, {name}", share,
             f"limit = min(EOS passthrough, bare model at the worker's batch size): {which}")
        )  # fmt: skip
        _target(report, f"exactly-once worker / limit >= 80%, {name}", share, 0.8, "{:.0%}")


def _efficiency(
    report: Report,
    e2e: dict[tuple[Kind, Mode, str | None], list[RunResult]],
    cores: dict[str, core.CoreResult],
) -> None:
    """Issue 33: the CPU a worker spends per event against what it cannot avoid, the Kafka
    client's (the passthrough's CPU per event) and the model's (CPU per row, same batch):
    (passthrough + model) / worker, all process CPU, every thread. And the scoring core
    against the bare model in process."""
    passthrough = e2e.get(("passthrough", "exactly-once", None))
    floor = statistics.median(r.cpu_us_per_event for r in passthrough) if passthrough else None
    models = {name: result.bare_cpu.median for name, result in cores.items()}
    wanted = {"LR": 0.75, "HGB": 0.85, suite.CHALLENGED: None}
    for name, target in wanted.items():
        runs = e2e.get(("worker", "exactly-once", name))
        parts = ["LR", "HGB"] if name == suite.CHALLENGED else [name]
        model = sum(models[p] for p in parts) if all(p in models for p in parts) else None
        value = None
        if runs and floor is not None and model is not None:
            worker = statistics.median(r.cpu_us_per_event for r in runs)
            value = (floor + model) / worker
        report.ratios.append(
            (f"efficiency, exactly-once, {name}", value,
             "(passthrough CPU/event + model CPU/row) / worker CPU/event")
        )  # fmt: skip
        if target is not None:
            _target(report, f"efficiency >= {target:.2f}, {name} (issue 33)", value, target,
                    "{:.2f}")  # fmt: skip
        cored = e2e.get(("passthrough", "exactly-once", name))
        if cored and floor is not None and model is not None:
            least = statistics.median(r.cpu_us_per_event for r in cored)
            report.ratios.append(
                (f"efficiency of the passthrough + scoring core, exactly-once, {name}",
                 (floor + model) / least,
                 "(passthrough + model) / (passthrough with the scoring core): the most a "
                 "worker on this core can reach")
            )  # fmt: skip
            if runs:
                report.ratios.append(
                    (f"worker / (passthrough + scoring core), CPU per event, {name}",
                     statistics.median(r.cpu_us_per_event for r in runs) / least,
                     "what the worker does beyond the scoring core and Kafka's floor")
                )  # fmt: skip
    for name, floor_share in (("LR", 0.5), ("HGB", 0.85)):
        result = cores.get(name)
        share = result.scorer.median / result.bare.median if result else None
        _target(report, f"scoring core / bare model >= {floor_share:.2f}, {name} (issue 33)",
                share, floor_share, "{:.2f}")  # fmt: skip


def _target(report: Report, name: str, value: float | None, floor: float, shown: str) -> None:
    ok = None if value is None else value >= floor
    report.targets.append((name, ok, "n/a" if value is None else shown.format(value)))


if __name__ == "__main__":
    sys.exit(main())
