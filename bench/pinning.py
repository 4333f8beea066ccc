"""The broker's JVM on one core, the measured process on the other (``taskset``, util-linux).

On two cores shared with the broker, wall throughput says as much about the broker's
scheduling as about the worker. Pinned, the worker (or the passthrough, or the bare
model) has a core of its own and the broker the other: the comparison is fair in wall
time too. The broker's affinity is put back to every core when the block ends, whatever
happened in it; the broker is never stopped.

The broker is the process listening on the bootstrap port (``ss -ltnp``), or
``BENCH_BROKER_PID``. Other processes on the machine are not pinned: on a shared machine
the measured core is not quiet, only the broker is kept off it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import bench.child
from bench.common import BenchError


@dataclass(frozen=True)
class Pinning:
    broker_pid: int
    broker_cpu: int
    measured_cpu: int

    def describe(self) -> str:
        return (
            f"broker JVM (pid {self.broker_pid}) on CPU {self.broker_cpu}, "
            f"measured process on CPU {self.measured_cpu} (taskset)"
        )


def broker_pid(bootstrap: str) -> int | None:
    """The pid listening on the bootstrap's port, else BENCH_BROKER_PID, else None."""
    named = os.environ.get("BENCH_BROKER_PID")
    if named:
        return int(named)
    port = bootstrap.rsplit(":", 1)[-1].split(",")[0]
    if shutil.which("ss") is None:
        return None
    done = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=10
    )
    found = re.search(r"pid=(\d+)", done.stdout)
    return int(found.group(1)) if found else None


def _taskset(cpus: str, pid: int) -> None:
    done = subprocess.run(
        ["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise BenchError(f"taskset -a -p -c {cpus} {pid}: {done.stderr.strip()}")


def available(bootstrap: str) -> str | None:
    """Why pinning cannot be done here, or None when it can."""
    if shutil.which("taskset") is None:
        return "no taskset"
    if len(os.sched_getaffinity(0)) < 2:
        return "fewer than 2 CPUs"
    if broker_pid(bootstrap) is None:
        return "the broker's process is not found (set BENCH_BROKER_PID)"
    return None


@contextmanager
def pinned(bootstrap: str) -> Iterator[Pinning]:
    """Broker on the first CPU, this process too; the measured children (``bench.child``,
    ``measured=True``) started in the block go on the second."""
    pid = broker_pid(bootstrap)
    if pid is None:
        raise BenchError("the broker's process is not found (set BENCH_BROKER_PID)")
    cpus = sorted(os.sched_getaffinity(0))
    every = ",".join(map(str, cpus))
    own = os.sched_getaffinity(0)
    pinning = Pinning(pid, cpus[0], cpus[1])
    _taskset(str(pinning.broker_cpu), pid)
    try:
        _all_threads({pinning.broker_cpu})  # the bench's own loading and sampling: off the core
        bench.child.PIN_CPU = pinning.measured_cpu
        yield pinning
    finally:
        bench.child.PIN_CPU = None
        _all_threads(own)
        _taskset(every, pid)  # every core again, whatever happened


def _all_threads(cpus: set[int]) -> None:
    """Every thread of this process (the model's OpenMP and BLAS pools included) on ``cpus``;
    threads started later inherit the caller's."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:  # a thread gone meanwhile
            continue


@contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """This process, every thread, on ``cpu`` for the block (the bare model, pinned)."""
    own = os.sched_getaffinity(0)
    _all_threads({cpu})
    try:
        yield
    finally:
        _all_threads(own)
