"""Event latency at a fixed offered rate: the worker running, ``bench.pace`` producing.

The worker is started first (exactly-once, metrics on) and the producer only once the
worker fetches its partitions: the passthrough's ``assigned`` line, the worker's
``start_offsets`` line (after its own fetch of the committed offsets, which ``bench.e2e``
reports apart: about 0.2 s here). A read_committed reader here
consumes the output as it is committed. Per event, two latencies (ms), both against the
input's CreateTime:

- ``visible``: when the reader got the record: what a downstream consumer sees, commit
  and fetch included (the reader fetches with ``fetch.wait.max.ms`` = 5);
- ``produced``: the output record's own CreateTime (when the worker produced it).

And the share of batch deliveries (transactions) that took over 50 ms: from the worker's
``scoring_delivery_duration_seconds`` (its /metrics, read once near the end), and the
passthrough's own count (its last line).

Inputs and outputs are matched by key (the event id; the output keeps the input's key).

The first second of offered load is left out (start-up: first fetches, first model call).
"""

from __future__ import annotations

import contextlib
import socket
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from confluent_kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from bench.child import Child, running
from bench.common import PYTHON, BenchError, Kafka, unique
from bench.e2e import FIRST_FETCH, Kind, property_args, worker_args, worker_defaults
from bench.passthrough import SLOW_DELIVERY_S

WARM_UP_S = 1.0
Samples = np.ndarray[tuple[int, int], np.dtype[np.float64]]


@dataclass(frozen=True)
class LatencyResult:
    visible_p50_ms: float
    visible_p99_ms: float
    produced_p50_ms: float
    produced_p99_ms: float
    offered_per_s: float
    events: int
    max_rss_mib: float
    slow_delivery_pct: float
    """Share of the batch deliveries (transactions) that took over 50 ms: the worker's
    ``scoring_delivery_duration_seconds``, the passthrough's own count."""


@dataclass(frozen=True)
class LatencyRun:
    kafka: Kafka
    workdir: Path
    bundle: Path
    rate: float
    seconds: float
    batch_age_ms: int | None = None
    """``--max-batch-age-ms`` (None: the worker's default)."""
    kind: Kind = "worker"
    """or the passthrough, under the same load and settings: the floor."""
    kafka_properties: tuple[str, ...] = ()

    def args(self, source: str, sink: str, count: int, metrics_port: int = 0) -> list[str]:
        default_events, default_age = worker_defaults()
        age = str(self.batch_age_ms or default_age)
        if self.kind == "passthrough":
            return [
                PYTHON, "-m", "bench.passthrough", "--bootstrap", self.kafka.bootstrap,
                "--input", source, "--output", sink, "--group", unique("group"),
                "--max-events", str(count), "--mode", "eos",
                "--max-batch-events", str(default_events), "--max-batch-age-ms", age,
                *property_args(self.kafka_properties),
            ]  # fmt: skip
        args = worker_args(self.bundle, self.kafka.bootstrap, source, sink, "exactly-once", count)
        args += ["--metrics-port", str(metrics_port)]  # the last one given counts
        return [*args, "--max-batch-age-ms", age, *property_args(self.kafka_properties)]


def measure(run: LatencyRun) -> LatencyResult:
    kafka, count = run.kafka, int(run.rate * run.seconds)
    source, sink = kafka.topic("lat-in"), kafka.topic("lat-out")
    kafka.topic_named(f"{sink}-dlq", 1)
    port = _free_port()
    try:
        with running(Child(run.args(source, sink, count, port), run.workdir)) as worker:
            _wait_for(worker, *FIRST_FETCH[run.kind])
            pace = [
                PYTHON, "-m", "bench.pace", "--bootstrap", kafka.bootstrap, "--topic", source,
                "--rate", str(run.rate), "--count", str(count),
            ]  # fmt: skip
            with running(Child(pace, run.workdir, measured=False)) as pacer:
                try:
                    scraped: list[tuple[float, float]] = []
                    watch = _scraper(port, scraped) if run.kind == "worker" else None
                    outputs = _read(kafka, sink, count, worker, run.seconds + 120, watch)
                    if watch is not None:
                        watch()  # the last deliveries, unless the worker is gone already
                except BenchError as exc:  # say whether the pacer gave up, and why
                    said = (pacer.stdout() + pacer.stderr()).strip().splitlines()[-3:]
                    raise BenchError(f"{exc}; pacer exit {pacer.poll()}: {said}") from None
                pacer.wait(60)
            worker.wait(60)
        if pacer.returncode != 0 or worker.returncode != 0:
            raise BenchError(f"pacer {pacer.returncode}, worker {worker.returncode}")
        if run.kind == "worker":
            if not scraped:
                raise BenchError(f"the worker's /metrics never answered on port {port}")
            slow = scraped[-1]
        else:  # the passthrough's own count, on its last line
            done = [x for x in worker.json_lines("stdout") if x.get("event") == "done"][-1]
            slow = (done["slow_deliveries"], done["deliveries"])
        samples = _join(kafka, source, outputs)
        return _result(samples, count, worker.peak_rss_kib / 1024, 100 * slow[0] / max(slow[1], 1))
    finally:
        kafka.cleanup()


def _wait_for(worker: Child, stream: str, event: str, deadline_s: float = 120) -> None:
    """Until ``worker`` logs ``event`` on ``stream``: the moment it fetches its partitions
    (the worker's own wait for its committed offsets is reported by ``bench.e2e``)."""
    deadline = time.monotonic() + deadline_s
    while not any(line.get("event") == event for line in worker.json_lines(stream)):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"no {event} line: {worker.stderr()[-2000:]}")
        time.sleep(0.05)


def _read(
    kafka: Kafka,
    topic: str,
    count: int,
    worker: Child,
    deadline_s: float,
    scrape: Callable[[], None] | None = None,
) -> dict[bytes, tuple[float, float]]:
    """Output key -> (output CreateTime, received), in ms, for every record of ``topic``;
    ``scrape`` is called once, when 95 % of them are in (the worker may have exited by the
    end: it stops once it has consumed its events)."""
    consumer = kafka.consumer("read_committed", **{"fetch.wait.max.ms": 5})
    consumer.assign([TopicPartition(topic, p, 0) for p in kafka.partitions(topic)])
    seen: dict[bytes, tuple[float, float]] = {}
    deadline = time.monotonic() + deadline_s
    next_sample = 0.0
    try:
        while len(seen) < count:
            if time.monotonic() > deadline:
                raise BenchError(f"read {len(seen)} of {count} predictions in {deadline_s:g}s")
            m = consumer.poll(0.05)  # not consume(n, t): that waits for n or t, late by up to t
            key = None if m is None or m.error() is not None else m.key()
            if m is not None and key is not None:
                seen.setdefault(key, (m.timestamp()[1], time.time() * 1000))
            if time.monotonic() >= next_sample:
                worker.sample()
                next_sample = time.monotonic() + 0.1
            if scrape is not None and len(seen) >= 0.95 * count:
                scrape()  # once, near the end: a scrape renders the drift gauges, and
                scrape = None  # doing it often would weigh on the latency measured
    finally:
        consumer.close()
    return seen


def _join(kafka: Kafka, source: str, outputs: dict[bytes, tuple[float, float]]) -> Samples:
    """(input CreateTime, output CreateTime, received) in ms per event, matched by key."""
    rows = []
    for m in kafka.read(source):
        out = outputs.get(m.key() or b"")
        if out is not None:
            rows.append((float(m.timestamp()[1]), *out))
    return np.array(rows, dtype=np.float64)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scraper(port: int, into: list[tuple[float, float]]) -> Callable[[], None]:
    def scrape() -> None:
        with contextlib.suppress(OSError):  # exited already: the earlier answer stands
            into.append(_slow_deliveries(port))

    return scrape


def _slow_deliveries(port: int) -> tuple[float, float]:
    """(deliveries over 50 ms, deliveries) from the worker's /metrics, read while it runs
    (it exits once it has consumed its events)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    within = total = None
    for family in text_string_to_metric_families(text):
        if family.name != "scoring_delivery_duration_seconds":
            continue
        for s in family.samples:
            if s.name.endswith("_bucket") and float(s.labels["le"]) == SLOW_DELIVERY_S:
                within = s.value
            elif s.name.endswith("_count"):
                total = s.value
    if within is None or total is None:
        raise BenchError(f"no scoring_delivery_duration_seconds bucket le={SLOW_DELIVERY_S}")
    return total - within, total


def _result(samples: Samples, count: int, rss_mib: float, slow_pct: float) -> LatencyResult:
    inputs = samples[:, 0]
    first = inputs.min()
    steady = samples[inputs >= first + WARM_UP_S * 1000]
    visible = steady[:, 2] - steady[:, 0]
    produced = steady[:, 1] - steady[:, 0]
    span_s = (inputs.max() - first) / 1000
    return LatencyResult(
        visible_p50_ms=float(np.percentile(visible, 50)),
        visible_p99_ms=float(np.percentile(visible, 99)),
        produced_p50_ms=float(np.percentile(produced, 50)),
        produced_p99_ms=float(np.percentile(produced, 99)),
        offered_per_s=float(count / span_s) if span_s > 0 else float("nan"),
        events=len(steady),
        max_rss_mib=rss_mib,
        slow_delivery_pct=slow_pct,
    )
