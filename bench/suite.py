"""The measurements of one ``python -m bench`` run, each adding its rows to the report."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from bench import core, latency, naive, pinning, startup
from bench.common import Figure, Kafka, events
from bench.e2e import Kind, Mode, RunResult, Setup, run_once, worker_defaults
from bench.report import Report
from model_bundles.bundle import load_bundle

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "penguins"
BUNDLES = {"LR": "config.toml", "HGB": "config-hgb.toml"}
"""The demo logistic-regression bundle and the hist-gradient-boosting one."""


@dataclass(frozen=True)
class Plan:
    events: int
    repeats: int
    naive_events: int
    core_events: int
    sweep: tuple[int, ...]
    latency_rate: float
    latency_seconds: float
    latency_ages_ms: tuple[int | None, ...]
    """``--max-batch-age-ms`` of each latency configuration (None: the worker's default)."""
    batch_events: int | None
    kafka_properties: tuple[str, ...]
    """librdkafka ``KEY=VALUE`` for the worker and the passthrough alike."""
    sections: frozenset[str]
    registry_url: str | None = None
    """The Schema Registry of the Avro run (None: the Avro run is left out)."""
    pin: bool = True
    """Broker JVM on one core, measured processes on the other (``bench.pinning``)."""
    pinned_note: str = ""
    """How the end-to-end and latency runs were pinned, for the notes (empty: not pinned)."""


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def build_bundles(workdir: Path, names: Iterable[str] = BUNDLES) -> dict[str, Path]:
    """Build the demo bundles ``names`` (default: all of ``BUNDLES``) under ``workdir``."""
    from model_bundles.build import build_from_config

    out = {}
    for name in names:
        out[name] = workdir / "bundles" / name
        build_from_config(EXAMPLES / BUNDLES[name], EXAMPLES / "penguins.csv", out[name])
    return out


def run_startup(plan: Plan, workdir: Path, bundles: dict[str, Path], report: Report) -> None:
    """`--help` and the self-check (issue 15's targets)."""
    repeats = max(plan.repeats, 3)
    say(f"start-up: scoring-worker --help x{repeats}")
    shown = startup.help_seconds(repeats)
    report.add("`scoring-worker --help`, wall time", shown, "fresh interpreter each run")
    report.targets.append(
        ("`scoring-worker --help` < 0.5 s", shown.median < 0.5, f"{shown.median:.2f} s")
    )
    say("start-up: building a 100-tree random forest")
    paths = {**bundles, "RF100": startup.forest_bundle(EXAMPLES, workdir)}
    for name, path in paths.items():
        bundle = startup.load(path)
        now = startup.selfcheck_seconds(bundle, repeats)
        before = startup.former_selfcheck_seconds(bundle, 1)
        rows = len(bundle.reference.golden)
        report.add(f"self-check at load, {name} ({rows} golden rows)", now,
                   f"every row at all/1/2/3/7 before: {before.median:.2f} s")  # fmt: skip
        limit = 2.0 if name == "RF100" else 1.0
        report.targets.append(
            (f"self-check < {limit:g} s, {name}", now.median < limit, f"{now.median:.2f} s")
        )


def run_core(
    plan: Plan, bundles: dict[str, Path], report: Report, cpu: int | None = None
) -> dict[str, core.CoreResult]:
    """In-process scorer vs bare predict_proba, both at the worker's batch size (like for
    like with the end-to-end runs), every thread of this process on ``cpu`` when given
    (the pinned comparison); returns each bundle's result."""
    values, keys = events(plan.core_events)
    inputs = core.input_events(values, keys)
    batch = plan.batch_events or worker_defaults()[0]
    medians: dict[str, core.CoreResult] = {}
    for name, path in bundles.items():
        say(f"core, {name}: {plan.core_events:,} events, batch {batch:,}, {plan.repeats} passes")
        sweep = plan.sweep if name == "LR" else ()
        with pinning.on_cpu(cpu) if cpu is not None else nullcontext():
            result = core.measure(load_bundle(path), inputs, batch, max(plan.repeats, 3), sweep)
        load = os.getloadavg()[0]
        report.add(
            f"scoring core in process (BatchScorer, batch {batch:,}), {name}",
            result.scorer,
            "bytes in -> record bytes out",
        )
        report.add(
            f"bare predict_proba on prebuilt frames (batch {batch:,}), {name}",
            result.bare,
            f"the model alone; load {load:.1f}",
        )
        report.add(
            f"bare model CPU per row (batch {batch:,}), {name}",
            result.bare_cpu,
            f"process CPU, every thread (time.process_time); load {load:.1f}",
        )
        report.add(
            f"scoring core CPU per event (batch {batch:,}), {name}",
            result.scorer_cpu,
            "process CPU, every thread",
        )
        medians[name] = result
        report.ratios.append(
            (
                f"scoring core / bare model, {name}",
                result.scorer.median / result.bare.median,
                "1 = no cost around it",
            )
        )
        stages = ", ".join(f"{k} {v:.2f}" for k, v in result.stages_ms.items())
        report.extra.append(f"- {name} batch of {batch:,}, best ms per step: {stages}")
        if result.sweep:
            sizes = ", ".join(f"{k}: {v:,.0f}" for k, v in result.sweep.items())
            report.extra.append(f"- {name} events/s in process by batch size: {sizes}")
    costs = core.decode_costs_us(load_bundle(bundles["LR"]), values[:batch], 10)
    report.extra.append(
        f"- decode step per event (batch of {batch:,}, thread CPU, best of 10): JSON "
        f"{costs['json']:.2f} µs, the same events as Avro in the wire format "
        f"{costs['avro']:.2f} µs (reader compiled from the writer schema, fastavro behind it)"
    )
    report.targets.append(
        (
            "Avro decode within 1.5 µs/event of JSON's",
            costs["avro"] - costs["json"] <= 1.5,
            f"{costs['avro'] - costs['json']:+.2f} µs",
        )
    )
    return medians


CHALLENGED = "LR, challenger HGB"
"""The LR champion with the HGB bundle as ``--challenger`` (its records in the transaction)."""
AVRO = "LR, Avro"
"""The LR bundle on the same events as Avro values through the Schema Registry."""
E2E: list[tuple[Kind, Mode, str | None]] = [
    ("passthrough", "exactly-once", None),
    ("passthrough", "at-least-once", None),
    ("passthrough", "exactly-once", "LR"),  # with the scoring core: what the worker adds to it
    ("passthrough", "exactly-once", "HGB"),
    ("worker", "exactly-once", "LR"),
    ("worker", "at-least-once", "LR"),
    ("worker", "exactly-once", "HGB"),
    ("worker", "at-least-once", "HGB"),
    ("worker", "exactly-once", CHALLENGED),
    ("worker", "exactly-once", AVRO),
]


def run_e2e(
    plan: Plan, kafka: Kafka, workdir: Path, bundles: dict[str, Path], report: Report
) -> dict[tuple[Kind, Mode, str | None], list[RunResult]]:
    values, keys = events(plan.events)
    setup = Setup(kafka, workdir, values, keys, plan.batch_events, plan.kafka_properties,
                  registry_url=plan.registry_url)  # fmt: skip
    configurations = [c for c in E2E if c[2] != AVRO or plan.registry_url]
    if len(configurations) < len(E2E):
        say("no SCHEMA_REGISTRY_URL: the Avro run is left out (make registry-up)")
    results: dict[tuple[Kind, Mode, str | None], list[RunResult]] = {c: [] for c in configurations}
    for repeat in range(plan.repeats):  # interleaved, so every configuration sees the same load
        for kind, mode, name in configurations:
            bundle = bundles["LR" if name in (CHALLENGED, AVRO) else name] if name else None
            challenger = bundles["HGB"] if name == CHALLENGED else None
            result = run_once(setup, kind, mode, bundle, challenger, avro=name == AVRO)
            results[kind, mode, name].append(result)
            say(
                f"{kind} {mode}{f' {name}' if name else ''} run {repeat + 1}/{plan.repeats}: "
                f"{result.events_per_s:,.0f} events/s, peak RSS {result.max_rss_mib:.0f} MiB"
            )
    for (kind, mode, name), runs in results.items():
        label = f"{kind} {mode}" + (f", {name}" if name else " (ceiling)")
        if kind == "passthrough" and name:
            label = f"passthrough {mode} + scoring core, {name}"
        loads = f"load {min(r.load for r in runs):.1f}-{max(r.load for r in runs):.1f}"
        report.add(
            f"{label}: {plan.events:,} events, 4 partitions",
            Figure.of([r.events_per_s for r in runs], "events/s"),
            f"first fetch -> last commit{plan.pinned_note}; {loads}",
        )
        report.add(
            f"{label}: process CPU per event",
            Figure.of([r.cpu_us_per_event for r in runs], "µs/event"),
            f"user + system, every thread (/proc/PID/stat); {loads}",
        )
    for (kind, mode, name), runs in results.items():
        if kind == "worker":
            report.add(
                f"worker peak RSS, {mode}, {name}",
                Figure.of([r.max_rss_mib for r in runs], "MiB"),
                "VmHWM",
            )
            report.add(
                f"worker main-thread CPU per event, {mode}, {name}",
                Figure.of([r.main_cpu_s / r.events * 1e6 for r in runs], "µs/event"),
                "the Python loop; its busy share = this x events/s",
            )
            report.add(
                f"worker start, assignment -> first fetch, {mode}, {name}",
                Figure.of([r.start_wait_s for r in runs], "s"),
                "its own fetch of the group's committed offsets; not in the events/s",
            )
    return results


def run_naive(plan: Plan, kafka: Kafka, workdir: Path, bundle: Path, report: Report) -> float:
    values, keys = events(plan.naive_events)
    setup = Setup(kafka, workdir, values, keys)
    rates = []
    for repeat in range(plan.repeats):
        rates.append(naive.measure(setup, bundle))
        say(f"naive per-message worker run {repeat + 1}/{plan.repeats}: {rates[-1]:,.0f} events/s")
    figure = Figure.of(rates, "events/s")
    report.add(
        f"naive per-message worker, LR: {plan.naive_events:,} events",
        figure,
        "json.loads, 1-row DataFrame, predict_proba, produce",
    )
    return figure.median


def run_latency(
    plan: Plan, kafka: Kafka, workdir: Path, bundle: Path, report: Report
) -> dict[int | None, tuple[Figure, Figure]]:
    """p50/p99 at the offered rate per batch-age setting, for the worker and, as the floor,
    the passthrough; returns the visible p99 figures (worker, passthrough) per setting."""
    p99: dict[int | None, tuple[Figure, Figure]] = {}
    for age in plan.latency_ages_ms:
        runs = {
            kind: latency.LatencyRun(
                kafka,
                workdir,
                bundle,
                plan.latency_rate,
                plan.latency_seconds,
                age,
                kind,
                plan.kafka_properties,
            )
            for kind in ("worker", "passthrough")
        }
        results: dict[str, list[latency.LatencyResult]] = {kind: [] for kind in runs}
        for repeat in range(plan.repeats):
            for kind, run in runs.items():
                results[kind].append(latency.measure(run))
                say(
                    f"latency, {kind}, batch age {age or 'default'} run "
                    f"{repeat + 1}/{plan.repeats}: p99 {results[kind][-1].visible_p99_ms:.0f} ms"
                )
        where = (
            f"{plan.latency_rate:,.0f} events/s offered, exactly-once, "
            f"--max-batch-age-ms {age if age is not None else 'default'}"
        )
        for kind, key, label in _LATENCY_ROWS:
            unit = "%" if key == "slow_delivery_pct" else "ms"
            figure = Figure.of([getattr(r, key) for r in results[kind]], unit)
            report.add(f"{label}, {kind}{', LR' if kind == 'worker' else ''}, {where}", figure,
                       _LATENCY_NOTES[key] + plan.pinned_note)  # fmt: skip
        p99[age] = (
            Figure.of([r.visible_p99_ms for r in results["worker"]], "ms"),
            Figure.of([r.visible_p99_ms for r in results["passthrough"]], "ms"),
        )
    return p99


_LATENCY_ROWS: Sequence[tuple[str, str, str]] = (
    ("worker", "visible_p50_ms", "event latency p50"),
    ("worker", "visible_p99_ms", "event latency p99"),
    ("worker", "produced_p99_ms", "event latency p99 to produce"),
    ("passthrough", "visible_p99_ms", "event latency p99"),
    ("worker", "slow_delivery_pct", "batch deliveries over 50 ms"),
    ("passthrough", "slow_delivery_pct", "batch deliveries over 50 ms"),
)
_LATENCY_NOTES = {
    "visible_p50_ms": "input CreateTime -> read by a read_committed consumer",
    "visible_p99_ms": "input CreateTime -> read by a read_committed consumer",
    "produced_p99_ms": "input CreateTime -> output CreateTime (before the commit)",
    "slow_delivery_pct": "share of transactions (produce, send offsets, commit) over 50 ms",
}
