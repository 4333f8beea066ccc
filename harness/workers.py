"""`scoring-worker run` as tests start it: topics, the demo bundle, fast group membership."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from harness.processes import SCORING_WORKER, LoggedProcess
from harness.topics import unique_topic
from model_bundles.build import build_from_config

REPO = Path(__file__).resolve().parents[1]
PENGUINS = REPO / "examples" / "penguins"
PENGUINS_CSV = PENGUINS / "penguins.csv"
PENGUINS_CONFIG = PENGUINS / "config.toml"
# fast group membership for tests: a dead member is noticed in 6 s, not 45 s
FAST_GROUP = ("consumer.session.timeout.ms=6000", "consumer.heartbeat.interval.ms=1000")


@functools.cache
def demo_bundle() -> Path:
    """The penguins demo bundle, built once per process (a test session)."""
    out = Path(tempfile.mkdtemp(prefix="sw-bundle-")) / "penguins"
    build_from_config(PENGUINS_CONFIG, PENGUINS_CSV, out)
    return out


@dataclass
class Topics:
    input: str
    output: str
    dlq: str
    group: str = field(default_factory=lambda: unique_topic("it-group"))


class WorkerProcess(LoggedProcess):
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
        log_path = log_dir / f"worker-{instance}-{time.monotonic_ns()}.log"
        super().__init__(f"worker {instance}", args, log_path, env=env)

    def story(self, last: int = 80) -> str:
        """The worker's own log lines (librdkafka's and transport errors left out), the
        last ``last``: what a failed delivery assertion needs beside it."""
        noise = {"librdkafka", "kafka_error"}
        kept = [line for line in self.lines() if line.get("event") not in noise]
        return "\n".join(orjson.dumps(line).decode() for line in kept[-last:])


def stop_all(workers: Sequence[LoggedProcess]) -> None:
    """SIGKILL every process still running (a test's cleanup)."""
    for w in workers:
        if w.proc.poll() is None:
            w.kill()
