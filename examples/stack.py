"""Local processes for `make demo`: worker replicas and Prometheus, and reading their metrics.

The same topology as docker-compose.yml, without Docker: the broker comes from
scripts/kafka-local, the workers are `scoring-worker run` processes on loopback
ports, Prometheus (when Debian's package is installed) scrapes them with
deploy/prometheus/prometheus-local.yml.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.http import Samples, http_get, scrape
from harness.polling import poll_until
from harness.ports import free_port
from harness.processes import LoggedProcess

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"


def wait_for(what: str, check: Callable[[], bool], deadline_s: float, every_s: float = 0.2) -> None:
    """Poll ``check`` until it holds; the demo stops (SystemExit) naming ``what`` after the
    deadline."""
    poll_until(f"demo: {what}", deadline_s, lambda: True if check() else None, every_s,
               error=SystemExit)  # fmt: skip


@dataclass
class Worker:
    name: str
    port: int
    process: LoggedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def samples(self) -> Samples:
        return scrape(self.url + "/metrics")

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, and SIGKILL when it has not exited within ``timeout_s``."""
        try:
            return self.process.stop(timeout_s)[0]
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.proc.returncode


def start_worker(cli: str, name: str, args: Sequence[str], log_dir: Path) -> Worker:
    port = free_port()
    command = [cli, "run", *args, "--instance-id", name,
               "--metrics-host", "127.0.0.1", "--metrics-port", str(port)]  # fmt: skip
    process = LoggedProcess(name, command, log_dir / f"{name}.log", stdout_too=True)
    worker = Worker(name, port, process)
    wait_for(f"{name} /healthz", lambda: _alive(worker), deadline_s=60)
    return worker


def wait_ready(workers: Sequence[Worker], deadline_s: float = 60) -> None:
    """Wait until every worker holds partitions (``/readyz`` 200): a stream published
    before the group settles could all go to the first worker."""

    def ready() -> bool:
        return all(_alive(w) and http_get(w.url + "/readyz")[0] == 200 for w in workers)

    wait_for("every worker to be assigned partitions", ready, deadline_s)


def _alive(worker: Worker) -> bool:
    if worker.process.proc.poll() is not None:
        raise SystemExit(f"demo: {worker.name} exited early; see {worker.process.log_path}")
    return http_get(worker.url + "/healthz")[0] == 200


def total(samples: Sequence[Samples], name: str, **labels: str) -> float:
    """Sum of a metric over workers, over the series whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(
        value
        for worker_samples in samples
        for (sample_name, sample_labels), value in worker_samples.items()
        if sample_name == name and wanted <= set(sample_labels)
    )


def by_label(samples: Sequence[Samples], name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for worker_samples in samples:
        for (sample_name, sample_labels), value in worker_samples.items():
            if sample_name == name:
                key = dict(sample_labels).get(label, "")
                out[key] = out.get(key, 0.0) + value
    return out


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    port: int
    targets_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        status, body = http_get(f"{self.url}/api/v1/query?query={urllib.parse.quote(expr)}")
        if status != 200:
            return []
        result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
        return result

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.targets_file.unlink(missing_ok=True)


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or _cached("prometheus")


def start_prometheus(
    workers: Sequence[Worker], data_dir: Path, name: str = "demo-workers"
) -> Prometheus | None:
    """Prometheus with deploy/prometheus/prometheus-local.yml (its rules included),
    scraping ``workers`` through a file_sd targets file called ``name``."""
    binary = prometheus_binary()
    if binary is None:
        return None
    targets_file = PROMETHEUS_DIR / "targets" / f"{name}.json"
    targets = [f"127.0.0.1:{w.port}" for w in workers]
    targets_file.write_text(json.dumps([{"targets": targets, "labels": {"stack": "demo"}}]))
    port = free_port()
    log = (data_dir.parent / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={PROMETHEUS_DIR / 'prometheus-local.yml'}",
         f"--storage.tsdb.path={data_dir}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    prometheus = Prometheus(process, port, targets_file)
    wait_for("Prometheus", lambda: http_get(prometheus.url + "/-/ready")[0] == 200, 60)
    return prometheus


def _cached(name: str) -> str | None:
    candidate = REPO / ".cache" / "bin" / name
    return str(candidate) if candidate.exists() else None
