"""Helpers for the live-worker tests: demo streams, their research records, producing them.

The worker subprocess (`WorkerProcess`, `Topics`, `demo_bundle`) lives in the shared
`harness.workers` and is re-exported here. Every wait polls against a deadline.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from examples.stream import LARGE_PAYLOAD_BYTES, generate_labelled_events
from harness.processes import SCORING_WORKER
from harness.topics import QUIET
from harness.workers import FAST_GROUP, REPO, Topics, WorkerProcess, demo_bundle, stop_all

# The integration tier imports these from here; they live in the shared harness.
__all__ = [
    "FAST_GROUP",
    "REPO",
    "SCORING_WORKER",
    "Topics",
    "WorkerProcess",
    "demo_bundle",
    "stop_all",
]

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
