"""End to end through a real broker: the worker (``scoring-worker run``) or the passthrough.

One run: fresh 4-partition input and output topics, the events loaded before the
consumer starts, the process started with ``--max-events N``, and the time from its first
fetch (the passthrough's partition assignment; the worker's ``start_offsets`` line, once
it knows where its partitions start) to the commit of its last output.
The end is seen from outside: the summed end offsets of the output topic, sampled every
~20 ms (the last stable offset for exactly-once, which moves only when a transaction
commits), reach their final value. The output is then read back: exactly N records.
The peak RSS is the child's ``VmHWM``, sampled with the end offsets.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from bench.child import Child, running
from bench.common import PYTHON, BenchError, EndWatcher, Kafka, unique
from harness.processes import SCORING_WORKER

Kind = Literal["worker", "passthrough"]
Mode = Literal["exactly-once", "at-least-once"]


@dataclass(frozen=True)
class RunResult:
    events: int
    seconds: float
    max_rss_mib: float
    cpu_s: float
    """CPU time of the whole process over the measured span."""
    main_cpu_s: float
    """CPU time of its main thread (the Python loop) over the span: with 2 cores shared with
    the broker, it says how busy the loop was whatever the neighbours did."""
    load: float = float("nan")
    """The machine's 1-minute load average at the end of the run (other users' work)."""
    start_wait_s: float = 0.0
    """From the first assignment to the first fetch (the worker's committed-offset fetch)."""

    @property
    def cpu_us_per_event(self) -> float:
        """Process CPU (user + system, every thread: librdkafka's too) per event, µs."""
        return self.cpu_s / self.events * 1e6

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


@dataclass(frozen=True)
class Setup:
    kafka: Kafka
    workdir: Path
    values: list[bytes]
    keys: list[bytes]
    batch_events: int | None = None
    """``--max-batch-events`` for the worker and the passthrough (None: the worker's default)."""
    kafka_properties: tuple[str, ...] = ()
    """``KEY=VALUE`` librdkafka properties for both (``--kafka-property``)."""
    deadline_s: float = 600
    registry_url: str | None = None
    """A Schema Registry (SCHEMA_REGISTRY_URL): the worker's Avro runs need one."""

    def worker_extra(self) -> list[str]:
        batch = [] if self.batch_events is None else ["--max-batch-events", str(self.batch_events)]
        return batch + property_args(self.kafka_properties)


def property_args(properties: tuple[str, ...]) -> list[str]:
    return [arg for p in properties for arg in ("--kafka-property", p)]


def worker_defaults() -> tuple[int, int]:
    """The worker's default (max_batch_events, max_batch_age_ms), for the passthrough."""
    from worker.live.settings import WorkerSettings

    fields = WorkerSettings.model_fields
    return int(fields["max_batch_events"].default), int(fields["max_batch_age_ms"].default)


def worker_args(
    bundle: Path, bootstrap: str, source: str, sink: str, mode: Mode, events: int, *extra: str
) -> list[str]:
    """``scoring-worker run`` as the benchmark starts it: metrics on (their cost counts)."""
    group = unique("group")
    return [
        SCORING_WORKER, "run", "--bundle", str(bundle), "--bootstrap-servers", bootstrap,
        "--input-topic", source, "--output-topic", sink, "--dlq-topic", f"{sink}-dlq",
        "--group-id", group, "--instance-id", group, "--delivery", mode,
        "--max-events", str(events), "--idle-timeout", "120",
        "--metrics-host", "127.0.0.1", "--metrics-port", "0", *extra,
    ]  # fmt: skip


def _passthrough_args(setup: Setup, source: str, sink: str, mode: Mode) -> list[str]:
    batch_events, batch_age_ms = worker_defaults()
    return [
        PYTHON, "-m", "bench.passthrough", "--bootstrap", setup.kafka.bootstrap,
        "--input", source, "--output", sink, "--group", unique("group"),
        "--max-events", str(len(setup.values)),
        "--mode", "eos" if mode == "exactly-once" else "alo",
        "--max-batch-events", str(setup.batch_events or batch_events),
        "--max-batch-age-ms", str(batch_age_ms), *property_args(setup.kafka_properties),
    ]  # fmt: skip


FIRST_FETCH: dict[Kind, tuple[str, str]] = {
    "passthrough": ("stdout", "assigned"),  # librdkafka starts its partitions at once
    "worker": ("stderr", "start_offsets"),  # after its own fetch of the committed offsets
}
"""The stream and log line marking when each kind of child may first fetch."""


def fetching_from(child: Child, kind: Kind) -> tuple[float, float]:
    """Wall time from which the child may fetch (``FIRST_FETCH``), and how long it waited
    for it after its first partition assignment. The worker first asks the group's
    committed offsets itself (``worker.live.positions``), a wait of its own that depends
    on the broker, not on the events: reported apart, not in the throughput."""
    stream, event = FIRST_FETCH[kind]
    lines = child.json_lines(stream)
    assigned = next((_when(line) for line in lines if line.get("event") == "assigned"), None)
    fetching = next((_when(line) for line in lines if line.get("event") == event), None)
    if assigned is None or fetching is None:
        raise BenchError(f"{kind} never logged where it starts: {child.stderr()[-2000:]}")
    return fetching, fetching - assigned


def _when(line: dict[str, object]) -> float:
    ts = line["ts"]
    return float(ts) if isinstance(ts, int | float) else _epoch(str(ts))


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_once(
    setup: Setup,
    kind: Kind,
    mode: Mode,
    bundle: Path | None = None,
    challenger: Path | None = None,
    avro: bool = False,
) -> RunResult:
    """One run; ``challenger``: the worker also scores with it, into ``<sink>-chal``;
    ``avro``: the same events as Avro in the wire format, through ``setup.registry_url``."""
    kafka, count = setup.kafka, len(setup.values)
    source, sink = kafka.topic("in"), kafka.topic("out")
    kafka.topic_named(f"{sink}-dlq", 1)
    try:
        values, format_args = setup.values, []
        if avro:
            if setup.registry_url is None:
                raise BenchError("an Avro run needs SCHEMA_REGISTRY_URL (make registry-up)")
            values = avro_values(setup.registry_url, f"{source}-value", setup.values)
            format_args = ["--value-format", "avro", "--schema-registry-url", setup.registry_url]
        kafka.load(source, values, setup.keys)
        if kind == "worker":
            assert bundle is not None
            args = worker_args(bundle, kafka.bootstrap, source, sink, mode, count)
            args += setup.worker_extra() + format_args
            if challenger is not None:
                kafka.topic_named(f"{sink}-chal", 4)
                args += ["--challenger", str(challenger), "--challenger-topic", f"{sink}-chal"]
        else:  # with a bundle: the passthrough with the scoring core in its loop
            args = _passthrough_args(setup, source, sink, mode)
            args += ["--bundle", str(bundle)] if bundle is not None else []
        child = Child(args, setup.workdir)
        isolation = "read_committed" if mode == "exactly-once" else "read_uncommitted"
        watcher = EndWatcher(kafka, sink, isolation)
        try:
            with running(child):
                _watch(child, watcher, setup.deadline_s)
            if child.returncode != 0:
                raise BenchError(f"{kind} exited {child.returncode}: {child.stderr()[-2000:]}")
            final = watcher.sample()
            end = watcher.reached(final)
        finally:
            watcher.close()
        produced = kafka.count(sink)
        if produced != count:
            raise BenchError(f"{kind} {mode}: {produced} records out for {count} events in")
        start, start_wait = fetching_from(child, kind)
        cpu, main_cpu = child.cpu_between(start, end)
        load = os.getloadavg()[0]
        return RunResult(
            count, end - start, child.peak_rss_kib / 1024, cpu, main_cpu, load, start_wait
        )
    finally:
        kafka.cleanup()


_AVRO: dict[tuple[int, int], list[bytes]] = {}


def avro_values(registry_url: str, subject: str, values: list[bytes]) -> list[bytes]:
    """``values`` (JSON events) as Avro in the wire format, ``examples.wire.SCHEMA_V1``
    registered under ``subject`` (the same schema keeps its id: encoded once per id)."""
    import json
    import urllib.request

    import orjson

    from examples.wire import SCHEMA_V1, avro_value

    request = urllib.request.Request(
        f"{registry_url}/subjects/{subject}/versions",
        data=json.dumps({"schema": json.dumps(SCHEMA_V1)}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        schema_id = int(json.loads(response.read())["id"])
    key = (schema_id, id(values))
    if key not in _AVRO:
        _AVRO[key] = [avro_value(schema_id, SCHEMA_V1, orjson.loads(v)) for v in values]
    return _AVRO[key]


def _watch(child: Child, watcher: EndWatcher, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while child.poll() is None:
        if time.monotonic() > deadline:
            raise BenchError(f"{child.args[:2]} still running after {deadline_s:g}s")
        watcher.sample()
        child.sample()
        time.sleep(0.02)
