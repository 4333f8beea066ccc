"""``python -m bench.signal_window [N]``: how long after spawn `scoring-worker run` holds
SIGTERM, i.e. the window in which a stop signal still kills it by its default action.

Spawns ``scoring-worker run --bundle /nonexistent`` N times (5) and polls the process's
``/proc/<pid>/status`` ``SigBlk`` mask until SIGTERM's bit is set; prints the seconds
from spawn for each run (``None``: the process ended first). Linux only. The figure
moves with the machine's load: compare runs made in the same minute.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.processes import SCORING_WORKER

SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def _holds_sigterm(pid: int) -> bool:
    """True once every thread of ``pid``'s main thread blocks SIGTERM (``SigBlk``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) & SIGTERM_BIT)
    return False


def window_s() -> float | None:
    """Seconds from spawn until the new process holds SIGTERM (None: it ended first)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [SCORING_WORKER, "run", "--bundle", "/nonexistent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while proc.poll() is None:
            try:
                if _holds_sigterm(proc.pid):
                    return time.monotonic() - started
            except OSError:
                break
        return None
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    found = [window_s() for _ in range(runs)]
    shown = ", ".join("None" if s is None else f"{s:.3f}" for s in found)
    print(f"scoring-worker run holds SIGTERM after (s): {shown}")


if __name__ == "__main__":
    main()
