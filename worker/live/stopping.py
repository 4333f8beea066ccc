"""SIGTERM and SIGINT for the live worker, seen even while librdkafka blocks.

Python runs signal handlers in the main thread between bytecodes, so a handler waits for
whatever librdkafka call the main thread is in (a metadata request to a broker that is
away, a consumer close...). Here the signals are blocked in every thread and one thread
waits for them (``sigwait``), so:

- the first signal asks the worker to stop (``request_stop``): it finishes and commits
  the batch in hand; with no batch in hand it stops at once (``Health.check`` raises
  ``Stopped`` wherever the worker waits);
- before the worker exists (bundle loading, start-up checks) it writes the stop line and
  ends the process at once, exit 0: nothing was consumed;
- a second signal ends the process at once (exit 128 + signal number, like the default
  action), with one line saying the batch in hand, if any, will be processed again.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Protocol

from worker.kafka.types import Call
from worker.live.settings import WorkerSettings
from worker.logs import EventLog

SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


class SignalStop:
    """The signal-waiting thread; ``attach`` the worker's stop request once it exists."""

    def __init__(self, exit_now: Callable[[int], None] = os._exit) -> None:
        self._request_stop: Callable[[str], None] | None = None
        self._exit_now = exit_now
        self.received: list[str] = []
        self._installed = False

    def install(self) -> None:
        """Block the signals in this (the main) thread and the threads it starts later,
        and start the thread that waits for them. Call before anything starts a thread:
        librdkafka's and the BLAS pool numpy starts on import would otherwise take a
        signal with its default action (``worker.cli.main`` calls it before importing
        the command). Idempotent."""
        if self._installed:
            return
        self._installed = True
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        threading.Thread(target=self._wait, name="signals", daemon=True).start()

    def attach(self, request_stop: Callable[[str], None]) -> None:
        self._request_stop = request_stop

    def _wait(self) -> None:
        while True:
            self.handle(signal.sigwait(SIGNALS))

    def handle(self, signum: int) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if len(self.received) == 1 and self._request_stop is not None:
            self._request_stop(name)
            return
        if self._request_stop is not None:
            print(
                f"scoring-worker: second {name}: stopped at once; a batch in hand was not "
                "committed and will be processed again",
                file=sys.stderr,
                flush=True,
            )
            self._exit_now(128 + signum)
            return
        # Still starting: nothing consumed, nothing to finish; the stop line as at any stop.
        EventLog().emit("stop", reason=name, during="start-up", consumed=0, produced=0)
        self._exit_now(0)


signals = SignalStop()
"""The process's one signal thread (`run` only)."""

CLOSE_AWAY_S = 1.0
"""How long closing a client may take while the broker is away (it cannot be left
politely then: the group notices the member gone after its session timeout)."""


class _Health(Protocol):
    broker_ok: bool

    @property
    def settings(self) -> WorkerSettings: ...


def close_within(close: Callable[[], None], health: _Health) -> bool:
    """Run ``close`` for at most the shutdown timeout, or ``CLOSE_AWAY_S`` while the broker
    is away; False when it was left running (its client is abandoned). Its exception,
    if it raised one, is raised here."""
    limit = health.settings.shutdown_timeout_s if health.broker_ok else CLOSE_AWAY_S
    closing = Call("close", close)
    if not closing.wait(limit):
        return False
    closing.result()
    return True
