"""`scoring-worker` subprocesses with their output in a file: start, signal, stop, read logs.

Workers run as real processes so SIGKILL, SIGSTOP and SIGTERM are real. Their JSON log
lines go to a file (no pipe to fill), read back by `lines`. Every wait has a deadline.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from harness.polling import poll_until

SCORING_WORKER = str(Path(sys.executable).with_name("scoring-worker"))
"""The command line of the environment running this code (.venv/bin/scoring-worker)."""


def json_lines(raw: bytes) -> list[dict[str, Any]]:
    """Each line as the JSON object it holds; a line that is not JSON (a traceback, a
    native library's print) is kept as ``{"event": "<not json>", "text": ...}``."""
    out = []
    for line in raw.splitlines():
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            out.append({"event": "<not json>", "text": line.decode(errors="replace")})
    return out


class LoggedProcess:
    """One subprocess (``name`` in messages) whose stderr, and with ``stdout_too`` its
    stdout, goes to ``log_path``."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        stdout_too: bool = False,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        stdout = self._log if stdout_too else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            list(args), stdout=stdout, stderr=self._log, env=None if env is None else dict(env)
        )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        """The exit code; subprocess.TimeoutExpired when it runs past ``timeout_s`` seconds."""
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

    def stop(self, timeout_s: float = 30) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit). Past ``timeout_s`` the stacks are
        dumped beside the log (`wait_stopped`) and subprocess.TimeoutExpired raised."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.send(signal.SIGTERM)
        return self.wait_stopped(timeout_s), time.monotonic() - started

    def wait_stopped(self, timeout_s: float) -> int:
        """Wait for the exit a SIGTERM asked for; past ``timeout_s`` the process's stacks
        are dumped (``_dump_stacks``) and TimeoutExpired raised."""
        try:
            return self.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._dump_stacks()
            raise

    def lines(self) -> list[dict[str, Any]]:
        """Every log line so far (`json_lines`)."""
        return json_lines(self.log_path.read_bytes())

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]

    def wait_event(self, name: str, deadline_s: float, count: int = 1) -> dict[str, Any]:
        """The ``count``-th log line whose event is ``name``; AssertionError (with the log's
        tail) if the process exits first, TimeoutError after ``deadline_s`` seconds."""

        def seen() -> dict[str, Any] | None:
            found = self.events(name)
            if len(found) >= count:
                return found[count - 1]
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited {self.proc.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            return None

        return poll_until(f"{self.name} to log {name!r}", deadline_s, seen)

    def _dump_stacks(self) -> None:
        """Write a process that ignores SIGTERM's thread stacks (Python and native, by
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
        print(f"{self.name} ignored SIGTERM; stacks in {out}", file=sys.stderr)
