"""The real Schema Registry for integration tests: the session's (`scripts/schema-registry`,
or SCHEMA_REGISTRY_URL), private instances a test may stop and start, and registration
over its REST API (what a producer's serializer does)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kafka_broker import poll_until

from harness.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "schema-registry"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def session_registry_url() -> str:
    """SCHEMA_REGISTRY_URL when it answers, else the local one (`scripts/schema-registry
    up`, which builds it with cargo the first time)."""
    named = os.environ.get("SCHEMA_REGISTRY_URL", "").strip().rstrip("/")
    if named and answers(named):
        return named
    done = subprocess.run(
        [str(SCRIPT), "up"], capture_output=True, text=True, timeout=3600, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/schema-registry up: {done.stderr.strip()[-2000:]}", pytrace=False)
    url = "http://127.0.0.1:" + os.environ.get("SCHEMA_REGISTRY_PORT", "8081")
    assert answers(url), f"the registry at {url} does not answer"
    return url


def register(url: str, subject: str, schema: dict[str, Any], schema_type: str = "AVRO") -> int:
    """``POST /subjects/{subject}/versions``: the schema's id."""
    body: dict[str, Any] = {"schema": json.dumps(schema)}
    if schema_type != "AVRO":
        body["schemaType"] = schema_type
    request = urllib.request.Request(
        f"{url}/subjects/{subject}/versions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.loads(response.read())["id"])


class PrivateRegistry:
    """A rivven-schema process of the test's own, on a free port: pause and resume it (its
    schemas kept), or stop it and start it again (in-memory: a restart forgets every schema;
    register them again in the same order)."""

    def __init__(self, log_dir: Path) -> None:
        session_registry_url()  # builds the binary if need be
        built = subprocess.run(
            [str(SCRIPT), "build"], capture_output=True, text=True, timeout=3600, check=True
        )
        self.binary = built.stdout.strip().splitlines()[-1]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"registry-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        serve = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--log-level", "warn", *serve],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        poll_until(f"registry on {self.url}", 30, lambda: True if answers(self.url) else None)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the registry keeps its port and its schemas but answers nothing (every
        request times out) until ``resume``; unlike a restart, nothing is forgotten."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``: the same schemas, under the same ids, at once."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def latest_id(url: str, subject: str) -> int:
    """``GET /subjects/{subject}/versions/latest``: the id of the subject's latest schema."""
    with urllib.request.urlopen(f"{url}/subjects/{subject}/versions/latest", timeout=10) as r:
        return int(json.loads(r.read())["id"])
