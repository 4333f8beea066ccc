"""SIGTERM/SIGINT during the process's first moments, before any command runs.

Importing the commands (scikit-learn, pandas, librdkafka) takes seconds; a signal then
would kill ``scoring-worker run`` without its ``stop`` line (SPEC.md: SIGTERM is a clean
stop, exit 0). ``install`` records such signals instead; ``run`` takes them over (a
signal already received stops it before it starts) and every other command gets the
default behaviour back (``release``: a recorded signal is delivered again).
"""

from __future__ import annotations

import os
import signal
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)
received: list[str] = []
"""Names of the signals recorded so far (``SIGTERM``...)."""


def _record(signum: int, _frame: FrameType | None) -> None:
    received.append(signal.Signals(signum).name)


def install() -> None:
    for sig in SIGNALS:
        signal.signal(sig, _record)


def release() -> None:
    """Default handlers again; a signal recorded meanwhile is delivered now."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    if received:
        os.kill(os.getpid(), signal.Signals[received[0]])
