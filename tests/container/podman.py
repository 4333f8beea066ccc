"""Running the image with podman, the way a deployment would (host network, read-only)."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from harness.ports import free_port

HARDENED = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL")
HARDENED += ("--security-opt", "no-new-privileges")
# OpenShift's defaults: read-only root and no writable /tmp at all (podman mounts tmpfs on
# /tmp, /var/tmp and /run with --read-only unless told not to), an arbitrary uid with no
# passwd entry in group 0, HOME=/
OPENSHIFT = ("--read-only", "--read-only-tmpfs=false", "--user", "12345:0", "--env=HOME=/")
OPENSHIFT += ("--cap-drop", "ALL", "--security-opt", "no-new-privileges")


def podman(
    *args: str, check: bool = True, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """``podman ARGS`` (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF come from the environment)."""
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


class Replica:
    """One detached worker container on the host network."""

    def __init__(self, image: str, name: str, env: dict[str, str], args: Sequence[str]) -> None:
        self.name = name
        self.port = free_port()
        env = {**env, "SCORING_WORKER_METRICS_PORT": str(self.port)}
        flags = [f"--env={k}={v}" for k, v in env.items()]
        podman("rm", "-f", name, check=False)
        podman("run", "-d", "--name", name, "--network", "host", *HARDENED, *flags, image, *args)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as r:
                return int(r.status), r.read().decode()
        except OSError as exc:
            return getattr(exc, "code", 0) or 0, str(exc)

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in podman("logs", self.name).stderr.splitlines():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                out.append({"event": "<not json>", "text": line})
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.logs() if line.get("event") == name]

    def running(self) -> bool:
        return podman("inspect", "-f", "{{.State.Running}}", self.name).stdout.strip() == "true"

    def stop(self, timeout_s: int = 30) -> int:
        """SIGTERM (podman stop), then the exit code."""
        podman("stop", "-t", str(timeout_s), self.name, timeout_s=timeout_s + 30)
        return int(podman("inspect", "-f", "{{.State.ExitCode}}", self.name).stdout.strip())

    def remove(self) -> None:
        podman("rm", "-f", self.name, check=False)


def research_in_image(image: str, events: Path, out_dir: Path) -> dict[str, dict[str, Any]]:
    """Research `score` inside the same image, on the same events: event_id -> record."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir.chmod(0o777)  # the image's uid 10001 writes here
    mounts = ["-v", f"{events}:/work/events.jsonl:ro", "-v", f"{out_dir}:/work/out"]
    podman("run", "--rm", *HARDENED, *mounts, image, "score", "--bundle",
           "/opt/bundles/penguins", "--input", "/work/events.jsonl",
           "--output", "/work/out/research.jsonl", timeout_s=300)  # fmt: skip
    records = [orjson.loads(x) for x in (out_dir / "research.jsonl").read_bytes().splitlines()]
    return {r["event_id"]: r for r in records}
