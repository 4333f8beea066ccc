"""`make demo`: the whole job end to end on this machine, then a short summary.

1. build the demo bundle (Palmer penguins, logistic regression: the champion) and the
   HGB bundle (gradient boosting: the challenger), and verify them;
2. generate a demo stream (seeded; a few bad events; `--drift` or DEMO_DRIFT shifts features);
3. score it through the research path (`score`);
4. start two worker replicas in one consumer group on a 4-partition topic, each with the
   challenger (`--challenger`), and a local Prometheus when Debian's package is installed;
5. publish the stream, wait until the workers have consumed all of it and delivered it
   (predictions plus dead letters equal the events published: counters read before the
   last batches are committed undercount), read their metrics;
6. stop the workers (SIGTERM), record the output topic and check research/live parity;
7. record the challenger topic, write late labels for a sample of the stream (the true
   species, from the penguins data) and `evaluate` champion against challenger.

Nothing is left running unless `--keep-running`.

`--format avro` (or DEMO_FORMAT=avro; `make demo` then starts the local Schema Registry) runs
the same job on Avro: the stream becomes a recording of Avro values with its writer schema
(`examples.wire`), research scores that recording, `publish --value-format avro` registers
the schema under the topic's subject, and the workers read `--value-format avro`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from examples.labels import write_species_labels
from examples.stack import (
    Prometheus,
    Samples,
    Worker,
    by_label,
    start_prometheus,
    start_worker,
    total,
    wait_for,
    wait_ready,
)
from worker.kafka.connection import Connection

REPO = Path(__file__).resolve().parent.parent


class HasSamples(Protocol):
    """A worker whose metrics can be read (``examples.stack.Worker``)."""

    def samples(self) -> Samples: ...


OUT = REPO / "out" / "demo"
CLI = str(Path(sys.executable).parent / "scoring-worker")
PENGUINS = REPO / "examples" / "penguins"


def step(title: str, args: list[str], quiet: bool = False) -> subprocess.CompletedProcess[str]:
    print(f"==> {title}", flush=True)
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1) or (result.returncode == 1 and "parity" not in args):
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"demo step failed ({title}), exit {result.returncode}")
    if not quiet:
        print(result.stdout, end="")
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.demo")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poison-rate", type=float, default=0.01)
    env_drift = [d for d in os.environ.get("DEMO_DRIFT", "").split(",") if d]
    parser.add_argument("--drift", action="append", default=env_drift,
                        help="shift a feature, e.g. bill_length_mm=+6 (or DEMO_DRIFT)")  # fmt: skip
    parser.add_argument("--keep-running", action="store_true")
    parser.add_argument("--label-every", type=int, default=25,
                        help="label every K-th event (late labels for a sample)")  # fmt: skip
    parser.add_argument("--format", choices=["json", "avro"],
                        default=os.environ.get("DEMO_FORMAT") or "json",
                        help="JSON, or Avro through a Schema Registry (DEMO_FORMAT)")  # fmt: skip
    registry = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081")
    parser.add_argument("--schema-registry-url", default=registry)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    parser.add_argument("--bootstrap-servers", default=bootstrap)
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    bundle, events, research = OUT / "bundle", OUT / "events.jsonl", OUT / "research.jsonl"
    data = str(PENGUINS / "penguins.csv")
    for title, config, out in (
        ("the demo bundle", "config.toml", bundle),
        ("the challenger", "config-hgb.toml", OUT / "bundle-hgb"),
    ):
        build = [
            CLI,
            "bundle",
            "build",
            "--config",
            str(PENGUINS / config),
            "--data",
            data,
            "--out",
            str(out),
        ]
        step(f"build {title}", build)
        step("verify it", [CLI, "bundle", "verify", str(out)])  # fmt: skip
    args.start_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    drift = [item for d in args.drift for item in ("--drift", d)]
    generate = [sys.executable, "-m", "examples.stream", "--events", str(args.events),
                "--start-time", args.start_time, "--poison-rate", str(args.poison_rate),
                "--output", str(events), *drift]  # fmt: skip
    step(f"generate {args.events} demo events" + (f" drifted {args.drift}" if drift else ""),
         generate)  # fmt: skip
    formats: list[str] = []
    if args.format == "avro":
        from examples.wire import write_avro_recording

        plain, events = events, OUT / "events-avro.jsonl"
        encoded, kept = write_avro_recording(plain, events)
        print(f"==> as Avro: {encoded} events, {kept} bad ones kept as JSON -> {events}")
        formats = ["--value-format", "avro"]
    scored = step("score them through the research path", [CLI, "score", "--bundle", str(bundle),
                  "--input", str(events), "--output", str(research), *formats],
                  quiet=True)  # fmt: skip
    print("   " + scored.stderr.strip().splitlines()[-1])
    return bundle, events, research


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    bundle, events, research = prepare(args)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    kinds = ("events", "predictions", "dead-letters", "challengers")
    topics = {k: f"demo-{k}-{run_id}" for k in kinds}
    connection = Connection.plain(args.bootstrap_servers)
    names = [a for t in topics.values() for a in ("--topic", t)]
    create = [CLI, "topics", "create", "--bootstrap-servers", args.bootstrap_servers,
              "--partitions", "4", *names]  # fmt: skip
    step("create the topics", create, quiet=True)
    worker_args = ["--bundle", str(bundle), "--bootstrap-servers", args.bootstrap_servers,
                   "--input-topic", topics["events"], "--output-topic", topics["predictions"],
                   "--dlq-topic", topics["dead-letters"],
                   "--challenger", str(OUT / "bundle-hgb"),
                   "--challenger-topic", topics["challengers"],
                   "--group-id", f"demo-{run_id}", *registry_args(args)]  # fmt: skip
    print(f"==> start {args.workers} workers in group demo-{run_id}", flush=True)
    workers = [start_worker(CLI, f"worker-{i}", worker_args, OUT) for i in range(args.workers)]
    wait_ready(workers)
    prometheus = start_prometheus(workers, OUT / "prometheus-data")
    try:
        report = stream(args, connection, topics, events, workers, prometheus)
    finally:
        if not args.keep_running:
            codes = [w.stop() for w in workers]
            print(f"==> workers stopped (SIGTERM), exit codes {codes}")
            if prometheus:
                prometheus.stop()
    live = OUT / "live.jsonl"
    step("record the output topic", [CLI, "record", "--bootstrap-servers", args.bootstrap_servers,
         "--topic", topics["predictions"], "--output", str(live)], quiet=True)  # fmt: skip
    parity = step("check research/live parity", [CLI, "parity", "--expected", str(research),
                  "--actual", str(live)], quiet=True)  # fmt: skip
    verdict = "IDENTICAL, bit for bit" if parity.returncode == 0 else "MISMATCH"
    records = sum(1 for line in live.read_bytes().splitlines() if line.strip())
    report.append(f"  output topic: {records} prediction records (read_committed)")
    report.append(f"  parity research vs live: {verdict} ({parity.stdout.strip().splitlines()[0]})")
    report += evaluation(args, topics["challengers"], live)
    print("\nsummary\n" + "\n".join(report))
    return 0 if parity.returncode == 0 else 1


def registry_args(args: argparse.Namespace) -> list[str]:
    if args.format == "json":
        return []
    return ["--value-format", args.format, "--schema-registry-url", args.schema_registry_url]


def evaluation(args: argparse.Namespace, challenger_topic: str, live: Path) -> list[str]:
    """Record the challenger topic, write late labels, evaluate: the summary's last lines."""
    challengers, labels = OUT / "challengers.jsonl", OUT / "labels.jsonl"
    page = OUT / "evaluation.html"
    step("record the challenger topic", [CLI, "record", "--bootstrap-servers",
         args.bootstrap_servers, "--topic", challenger_topic, "--output", str(challengers)],
         quiet=True)  # fmt: skip
    print(f"==> write late labels for every {args.label_every}th event (true species)")
    count = write_species_labels(labels, args.events, drift=args.drift,
                                 poison_rate=args.poison_rate, start_time=args.start_time,
                                 every=args.label_every)  # fmt: skip
    result = step(f"evaluate champion vs challenger on {count} labels", [CLI, "evaluate",
                  "--labels", str(labels), "--predictions", str(live), "--predictions",
                  str(challengers), "--report", str(page)], quiet=True)  # fmt: skip
    return ["  evaluation (champion first, then the challenger):",
            *(f"    {line}" for line in result.stdout.rstrip().splitlines()),
            f"  evaluation report: {page}"]  # fmt: skip


def stream(
    args: argparse.Namespace,
    connection: Connection,
    topics: dict[str, str],
    events: Path,
    workers: list[Worker],
    prometheus: Prometheus | None,
) -> list[str]:
    print(f"==> publish the stream to {topics['events']}", flush=True)
    publish = subprocess.Popen([CLI, "publish", "--bootstrap-servers",
                                connection.bootstrap_servers, "--topic", topics["events"],
                                "--input", str(events), *registry_args(args)])  # fmt: skip

    def consumed() -> float:
        return total([w.samples() for w in workers], "scoring_events_consumed_total")

    wait_for("the first event to be consumed", lambda: consumed() > 0, deadline_s=120)
    started, first = time.monotonic(), consumed()
    wait_for("the workers to consume every event", lambda: consumed() >= args.events, 300)
    elapsed = time.monotonic() - started
    if publish.wait(timeout=60) != 0:
        raise SystemExit("demo: publish failed")
    samples = delivered(workers, args.events)
    produced = total(samples, "scoring_predictions_produced_total")
    rejects = by_label(samples, "scoring_events_rejected_total", "reason")
    feature_psi = {
        dict(labels)["feature"]: value
        for s in samples[:1]
        for (name, labels), value in s.items()
        if name == "scoring_feature_drift" and dict(labels).get("statistic") == "psi"
    }
    drift = {
        stat: total(samples[:1], "scoring_prediction_drift", statistic=stat)
        for stat in ("psi", "ks", "js")
    }
    lines = [
        f"  events: {args.events} published, {produced:.0f} predictions, "
        f"{sum(rejects.values()):.0f} dead letters "
        f"({', '.join(f'{k} {v:.0f}' for k, v in sorted(rejects.items()) if v)})",
        f"  throughput: {(args.events - first) / elapsed:,.0f} events/s over "
        f"{len(workers)} workers (first to last event consumed, {elapsed:.1f}s)",
        f"  prediction drift (worker-0 window): psi {drift['psi']:.4f}, ks {drift['ks']:.4f}, "
        f"js {drift['js']:.4f}",
        "  feature psi: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(feature_psi.items())),
        "  challenger agreement with the champion (worker-0 window): "
        f"{total(samples[:1], 'scoring_challenger_agreement_ratio'):.4f}, prediction psi "
        f"{total(samples[:1], 'scoring_challenger_prediction_drift', statistic='psi'):.4f}",
    ]
    urls = ", ".join(f"{w.url}/metrics" for w in workers)
    if args.keep_running:
        lines.append(f"  metrics (still served): {urls}")
    else:
        lines.append("  metrics: served while the workers ran (--keep-running keeps them up)")
    if prometheus:
        lines.append(fleet_line(prometheus, produced, args.keep_running))
    return lines


def delivered(workers: Sequence[HasSamples], events: int, deadline_s: float = 120) -> list[Samples]:
    """The workers' metrics once every published event was delivered: predictions plus
    dead letters (counted when their transaction commits) reach ``events``.

    Consumed is counted when an event is read; the batches in hand are delivered a poll
    or a commit later, so a summary read as soon as everything was consumed showed
    48,119 predictions and 403 dead letters of 50,000 while the output topic held 49,585
    records (issue 28). Raises SystemExit after ``deadline_s`` naming the counts.
    """
    seen: list[list[Samples]] = []

    def settled() -> bool:
        samples = [w.samples() for w in workers]
        seen[:] = [samples]
        produced = total(samples, "scoring_predictions_produced_total")
        return produced + total(samples, "scoring_events_rejected_total") >= events

    try:
        wait_for(f"the workers to deliver all {events} events", settled, deadline_s)
    except SystemExit as exc:
        last = seen[0] if seen else []
        produced = total(last, "scoring_predictions_produced_total")
        rejected = total(last, "scoring_events_rejected_total")
        raise SystemExit(
            f"{exc} ({produced:.0f} predictions, {rejected:.0f} dead letters)"
        ) from None
    return seen[0]


def fleet_line(prometheus: Prometheus, produced: float, keep_running: bool) -> str:
    """The fleet PSI recording rule, once evaluated over scrapes that saw every prediction."""
    seen_at: list[float] = []

    def scraped_all() -> bool:
        result = prometheus.query("sum(scoring_predictions_produced_total)")
        if result and float(result[0]["value"][1]) >= produced:
            seen_at.append(float(result[0]["value"][0]))
            return True
        return False

    fleet: list[float] = []

    def evaluated_after() -> bool:
        result = prometheus.query("timestamp(scoring:prediction_psi:fleet_total)")
        if not result or float(result[0]["value"][1]) <= seen_at[0]:
            return False
        fleet.append(float(prometheus.query("scoring:prediction_psi:fleet_total")[0]["value"][1]))
        return True

    try:
        wait_for("Prometheus to scrape every prediction", scraped_all, 30, every_s=1.0)
        wait_for("Prometheus to evaluate the fleet PSI", evaluated_after, 30, every_s=1.0)
    except SystemExit as exc:
        return f"  prometheus: {prometheus.url} ({exc})"
    where = f"{prometheus.url}, " if keep_running else ""
    return f"  prometheus: {where}fleet prediction PSI over all replicas {fleet[0]:.4f}"


if __name__ == "__main__":
    sys.exit(main())
