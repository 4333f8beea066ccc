"""Helpers for the live-worker tests: streams, worker subprocesses, and the verifier.

Workers run as real `scoring-worker run` subprocesses so SIGKILL, SIGSTOP and SIGTERM
are real. Their stderr (the JSON log lines) goes to a file the tests read. Every wait
polls against a deadline.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from kafka_broker import QUIET, poll_until, unique_topic

from examples.stream import LARGE_PAYLOAD_BYTES, generate_labelled_events
from model_bundles.build import build_from_config

REPO = Path(__file__).resolve().parents[2]
SCORING_WORKER = str(Path(sys.executable).parent / "scoring-worker")
# fast group membership for tests: a dead member is noticed in 6 s, not 45 s
FAST_GROUP = ("consumer.session.timeout.ms=6000", "consumer.heartbeat.interval.ms=1000")


@functools.cache
def demo_bundle() -> Path:
    """The penguins demo bundle, built once per test session."""
    out = Path(tempfile.mkdtemp(prefix="sw-bundle-")) / "penguins"
    penguins = REPO / "examples" / "penguins"
    build_from_config(penguins / "config.toml", penguins / "penguins.csv", out)
    return out


# --- streams ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Stream:
    """Input lines with their keys (``k<n>``) and expected reject reasons (None: valid)."""

    lines: list[bytes]
    reasons: list[str | None]
    path: Path
    first: int = 0
    """Index of ``lines[0]`` in the whole stream (a part keeps the whole stream's keys)."""

    @property
    def keys(self) -> list[bytes]:
        return [f"k{self.first + i}".encode() for i in range(len(self.lines))]

    @property
    def valid(self) -> int:
        return sum(r is None for r in self.reasons)

    def part(self, start: int, end: int) -> Stream:
        return Stream(self.lines[start:end], self.reasons[start:end], self.path, start)


def make_stream(
    directory: Path, n: int, seed: int, poison_rate: float = 0.0, large_at: Sequence[int] = ()
) -> Stream:
    """A demo stream; ``large_at`` lines become valid events padded past 2 MiB."""
    lines, reasons = [], []
    for line, reason in generate_labelled_events(n, seed, poison_rate=poison_rate):
        lines.append(line)
        reasons.append(reason)
    for i in large_at:
        event = {"event_id": f"large-{i}", "attachment": "x" * LARGE_PAYLOAD_BYTES}
        lines[i], reasons[i] = orjson.dumps(event), "too_large"
    path = directory / f"events-{seed}-{n}.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return Stream(lines, reasons, path)


_SESSION_DIR = Path(tempfile.mkdtemp(prefix="sw-streams-"))
_POOL = ThreadPoolExecutor(max_workers=2)


@functools.cache
def cached_stream(
    n: int, seed: int, poison_rate: float = 0.0, large_at: tuple[int, ...] = ()
) -> Stream:
    """``make_stream`` once per session for the same arguments."""
    return make_stream(_SESSION_DIR, n, seed, poison_rate, large_at)


@functools.cache
def research_records_async(stream: Stream) -> Future[dict[str, dict[str, Any]]]:
    """``research_records`` of a cached stream, computed in the background once."""
    return _POOL.submit(research_records, demo_bundle(), stream, _SESSION_DIR)


def research_records(bundle: Path, stream: Stream, directory: Path) -> dict[str, dict[str, Any]]:
    """`scoring-worker score` on the same events: event_id -> record (the research path)."""
    out = directory / f"research-{stream.path.stem}.jsonl"
    subprocess.run(
        [
            SCORING_WORKER,
            "score",
            "--bundle",
            str(bundle),
            "--input",
            str(stream.path),
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    return {r["event_id"]: r for r in records}


def produce_stream(bootstrap: str, topic: str, stream: Stream, deadline_s: float = 120) -> None:
    """Produce every line keyed ``k<n>``; large messages allowed (topic must allow them)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "message.max.bytes": 4_000_000,
            **QUIET,
        }
    )
    errors: list[Any] = []
    for key, value in zip(stream.keys, stream.lines, strict=True):
        while True:
            try:
                producer.produce(
                    topic, value, key, on_delivery=lambda e, _m: e and errors.append(e)
                )
                break
            except BufferError:
                producer.poll(0.1)
    left = producer.flush(deadline_s)
    assert not errors and left == 0, f"producing {topic}: {errors[:3]}, {left} left"


# --- worker processes --------------------------------------------------------------------


@dataclass
class Topics:
    input: str
    output: str
    dlq: str
    group: str = field(default_factory=lambda: unique_topic("it-group"))


class WorkerProcess:
    """One `scoring-worker run` subprocess with its JSON log lines in a file."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        log_dir: Path,
        instance: str,
        *extra: str,
        delivery: str = "exactly-once",
        kafka: Sequence[str] = FAST_GROUP,
        derive_id_in: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        bundle: Path | None = None,
        wrap: Sequence[str] = (),
    ) -> None:
        """``derive_id_in``: pass no ``--instance-id`` and give the process this ``TMPDIR``,
        so it derives its own id there (``instance`` then only names the log file).
        ``extra_env``: more ``SCORING_WORKER_*`` variables (settings kept out of the argv).
        ``wrap``: a command prefix that execs the worker (a sandbox), keeping its pid."""
        self.instance = instance
        self.log_path = log_dir / f"worker-{instance}-{time.monotonic_ns()}.log"
        args = [*wrap, SCORING_WORKER, "run", "--bundle", str(bundle or demo_bundle())]
        args += ["--bootstrap-servers", bootstrap, "--input-topic", topics.input]
        args += ["--output-topic", topics.output, "--dlq-topic", topics.dlq]
        args += ["--group-id", topics.group, "--delivery", delivery]
        if derive_id_in is None:
            args += ["--instance-id", instance]
        for prop in kafka:
            args += ["--kafka-property", prop]
        args += list(extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCORING_WORKER_")}
        if derive_id_in is not None:
            env["TMPDIR"] = str(derive_id_in)
        env.update(extra_env or {})
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._log, env=env)
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        finally:
            if self.proc.returncode is not None:
                self._log.close()

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(30)

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log_path.read_bytes().splitlines():
            try:
                out.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                out.append({"event": "<not json>", "text": raw.decode(errors="replace")})
        return out

    def story(self, last: int = 80) -> str:
        """The worker's own log lines (librdkafka's and transport errors left out), the
        last ``last``: what a failed delivery assertion needs beside it."""
        noise = {"librdkafka", "kafka_error"}
        kept = [line for line in self.lines() if line.get("event") not in noise]
        return "\n".join(orjson.dumps(line).decode() for line in kept[-last:])

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]

    def wait_event(self, name: str, deadline_s: float, count: int = 1) -> dict[str, Any]:
        def seen() -> dict[str, Any] | None:
            found = self.events(name)
            if len(found) >= count:
                return found[count - 1]
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker {self.instance} exited {self.proc.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            return None

        return poll_until(f"worker {self.instance} to log {name!r}", deadline_s, seen)

    def stop(self, timeout_s: float = 30) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit)."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.send(signal.SIGTERM)
        return self.wait_stopped(timeout_s), time.monotonic() - started

    def wait_stopped(self, timeout_s: float) -> int:
        """Wait for the exit a SIGTERM asked for; past ``timeout_s`` the worker's stacks
        are dumped (``_dump_stacks``) and TimeoutExpired raised."""
        try:
            return self.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._dump_stacks()
            raise

    def _dump_stacks(self) -> None:
        """Write a worker that ignores SIGTERM's thread stacks (Python and native, by
        py-spy) beside its log, so the hang can be read after the run."""
        spy = Path(sys.executable).parent / "py-spy"
        out = self.log_path.with_suffix(".stacks")
        try:
            done = subprocess.run(
                [str(spy), "dump", "--native", "--pid", str(self.pid)],
                capture_output=True,
                timeout=60,
                check=False,
            )
            out.write_bytes(done.stdout + done.stderr)
        except (OSError, subprocess.TimeoutExpired) as exc:
            out.write_text(f"py-spy dump failed: {exc}\n")
        print(f"worker {self.instance} ignored SIGTERM; stacks in {out}", file=sys.stderr)


def stop_all(workers: Sequence[WorkerProcess]) -> None:
    for w in workers:
        if w.proc.poll() is None:
            w.kill()
