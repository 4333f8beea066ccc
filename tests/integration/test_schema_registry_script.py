"""``scripts/schema-registry`` on a machine where a registry it started is gone.

A restarted machine keeps the clone's run directory, so its pid file names a process that
no longer exists. ``up`` must start a new registry and wait for that one. It used to be
able to read the old pid back before the new process had written its own, and say "the
registry exited during start-up" while the new registry ran: a race of a few
milliseconds, seen once on a loaded machine, that this test cannot force; it holds the
scenario (old pid file, ``up``, ``down``) and the script now removes the old file first.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from schema_registry import SCRIPT, answers, session_registry_url

from harness.ports import free_port


def _script(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), command], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_up_starts_a_registry_over_the_pid_file_of_one_that_is_gone(tmp_path: Path) -> None:
    session_registry_url()  # the binary built (cached per user)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    port = free_port()
    env = {**os.environ, "SCHEMA_REGISTRY_RUN_DIR": str(run_dir), "SCHEMA_REGISTRY_PORT": str(port)}
    finished = subprocess.Popen(["true"])  # a pid that no longer runs
    finished.wait()
    (run_dir / "registry.pid").write_text(f"{finished.pid}\n")
    try:
        started = _script("up", env)
        assert started.returncode == 0, started.stderr
        assert answers(f"http://127.0.0.1:{port}")
        pid = int((run_dir / "registry.pid").read_text())
        assert pid != finished.pid
    finally:
        stopped = _script("down", env)
    assert stopped.returncode == 0, stopped.stderr
    assert not answers(f"http://127.0.0.1:{port}")
