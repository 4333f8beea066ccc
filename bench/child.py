"""Child processes of the benchmark: output in files, peak memory and CPU sampled."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from bench.common import REPO, poll_until

SOURCE_TREE: Path = REPO
"""The source tree a child imports the worker from (``bench.ab`` sets it per run)."""
PIN_CPU: int | None = None
"""The CPU measured children are started on (``taskset -c``; ``bench.pinning`` sets it)."""


@dataclass
class Child:
    """A subprocess with its output in files (no pipe to fill) and its peak memory."""

    args: list[str]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    measured: bool = True
    """The process under measurement (pinned with ``PIN_CPU``), not a helper like the pacer."""
    process: subprocess.Popen[bytes] | None = None
    returncode: int | None = None
    peak_rss_kib: int = 0
    """Peak resident set size of the child's program: ``VmHWM`` of /proc/<pid>/status, as
    last sampled. (Not ``ru_maxrss``: that keeps the forked parent's size across exec.)"""
    cpu_samples: list[tuple[float, float, float]] = field(default_factory=list)
    """(wall time, process CPU s, main-thread CPU s) as sampled by ``sample``."""
    _out: IO[bytes] | None = None
    _err: IO[bytes] | None = None

    def start(self) -> Child:
        name = uuid.uuid4().hex[:8]
        self._out = (self.workdir / f"{name}.out").open("wb")
        self._err = (self.workdir / f"{name}.err").open("wb")
        env = {**os.environ, "PYTHONPATH": str(SOURCE_TREE), **self.env}
        pin = ["taskset", "-c", str(PIN_CPU)] if self.measured and PIN_CPU is not None else []
        self.process = subprocess.Popen(
            [*pin, *self.args], stdout=self._out, stderr=self._err, env=env, cwd=SOURCE_TREE
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def poll(self) -> int | None:
        """The exit code once the child has exited (reaping it), else None."""
        if self.returncode is not None:
            return self.returncode
        self.sample()
        assert self.process is not None
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # Popen reaped it first (``kill`` polls before it signals)
            if self.process.returncode is None:
                raise
            self.returncode = self.process.returncode
            self._close_files()
            return self.returncode
        if pid == 0:
            return None
        self.returncode = os.waitstatus_to_exitcode(status)
        self.process.returncode = self.returncode  # reaped here, not by Popen
        self._close_files()
        return self.returncode

    def sample(self) -> None:
        """Record the peak RSS so far, and the CPU time used by the process and its main
        thread (the one running Python) at this moment."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
            process = Path(f"/proc/{self.pid}/stat").read_text()
            main = Path(f"/proc/{self.pid}/task/{self.pid}/stat").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))
        self.cpu_samples.append((time.time(), _cpu_s(process), _cpu_s(main)))

    def cpu_between(self, start: float, end: float) -> tuple[float, float]:
        """CPU seconds (process, main thread) used between two wall times, from the
        samples nearest to them."""
        if not self.cpu_samples:
            return (float("nan"), float("nan"))
        first = min(self.cpu_samples, key=lambda s: abs(s[0] - start))
        last = min(self.cpu_samples, key=lambda s: abs(s[0] - end))
        return (last[1] - first[1], last[2] - first[2])

    def wait(self, deadline_s: float) -> int:
        return poll_until(f"{self.args[2:4]} to exit", deadline_s, self.poll, 0.05)

    def kill(self) -> None:
        if self.returncode is None and self.process is not None:
            self.process.kill()
            poll_until("killed child to exit", 30, self.poll, 0.05)

    def stdout(self) -> str:
        assert self._out is not None
        return Path(self._out.name).read_text(errors="replace")

    def stderr(self) -> str:
        assert self._err is not None
        return Path(self._err.name).read_text(errors="replace")

    def json_lines(self, stream: str = "stderr") -> list[dict[str, Any]]:
        text = self.stderr() if stream == "stderr" else self.stdout()
        out = []
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    out.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue
        return out

    def _close_files(self) -> None:
        for handle in (self._out, self._err):
            if handle is not None:
                handle.close()


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(stat: str) -> float:
    """utime + stime of a /proc/.../stat line, in seconds."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@contextmanager
def running(child: Child) -> Iterator[Child]:
    """Start ``child``; kill it if the block leaves early."""
    child.start()
    try:
        yield child
    finally:
        child.kill()
