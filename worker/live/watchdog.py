"""A model call that does not return: seen from outside the loop, then stopped (exit 3).

The loop scores a batch in its own thread; trusted code that blocks (a feature-service
call without a timeout) stops the loop there, and with it everything the loop reports:
readiness, lag, commits. ``ModelWatchdog`` runs in a thread of its own and needs nothing
of the loop but ``batch_started``/``batch_finished`` around each scoring call:

- every ``TICK_S`` it exports how long the batch in hand has been scored
  (``scoring_batch_in_progress_seconds``; 0 between batches);
- past half of ``--model-timeout`` without a new model call (a batch being isolated,
  ``worker.core.model_errors``, makes many short ones) the batch is *stuck*: the worker
  is not ready, and the lag of the partitions it owns (high watermark minus the group's
  committed offset, or the batch's first offset where the group has none yet) is asked
  of the broker in a helper thread (``worker.kafka.types.Call``) and exported, so lag
  alerts see the backlog the stuck loop cannot report;
- at ``--model-timeout`` without a new model call it logs the scoring thread's stack
  (``model_timeout`` line), writes one line on stderr and ends the process with exit 3
  (``os._exit``: the loop's thread cannot be interrupted). No transaction is open while
  a batch is scored, so nothing is left half-written; the batch is read again by
  whoever gets its partitions.

A batch that returns in time restores readiness and the gauge. ``--model-timeout 0``
keeps the reporting and never exits.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from worker.core.events import InputEvent
from worker.kafka.types import Call, KafkaFailure, Partition
from worker.logs import EventLog

TICK_S = 0.25
"""How often the watchdog looks (and updates the gauge)."""
LAG_EVERY_S = 1.0
"""How often a stuck batch's lag is asked of the broker."""
ASK_TIMEOUT_S = 2.0


class WatchdogObserver(Protocol):
    def set_batch_in_progress(self, seconds: float) -> None: ...
    def set_lag(self, topic: str, partition: int, lag: int) -> None: ...


class Readiness(Protocol):
    def set_model_stuck(self, stuck: bool) -> None: ...


class LagOffsets(Protocol):
    """``worker.kafka.offsets_admin.OffsetsAsker``: committed offsets and high watermarks."""

    def ask_committed(self, partitions: Sequence[Partition], timeout_s: float) -> Any: ...
    def stable_and_end(
        self, partitions: Sequence[Partition], timeout_s: float
    ) -> dict[Partition, tuple[int, int]]: ...


class ModelWatchdog:
    """See the module docstring. ``timeout_s``: ``--model-timeout`` (0: never exit)."""

    def __init__(
        self,
        timeout_s: float,
        offsets: LagOffsets,
        observer: WatchdogObserver,
        readiness: Readiness,
        log: EventLog,
        clock: Callable[[], float] = time.monotonic,
        exit_process: Callable[[int], None] = os._exit,
        calls: Callable[[], int] = lambda: 0,
    ) -> None:
        self.timeout_s = timeout_s
        self.stuck_after_s = timeout_s / 2 if timeout_s else 30.0
        self.offsets = offsets
        self.observer = observer
        self.readiness = readiness
        self.log = log
        self.clock = clock
        self.exit_process = exit_process
        self.calls = calls
        """Model calls made so far in isolating (``BatchScorer.isolating_calls``)."""
        self._calls_seen = (0, 0.0)
        """(calls, when that count was first seen)."""
        self._batch: tuple[float, Sequence[InputEvent], frozenset[Partition], int] | None = None
        """(started, events, owned partitions, scoring thread id) of the batch in hand."""
        self._stuck = False
        self._shown = False
        """The gauge shows a batch (set back to 0 by the next tick without one)."""
        self._lock = threading.Lock()
        """Orders the stuck/unstuck transitions of the two threads."""
        self._asked: Call | None = None
        self._next_ask = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * TICK_S)

    def batch_started(self, events: Sequence[InputEvent], owned: Collection[Partition]) -> None:
        """Called by the loop before scoring: one assignment, nothing more per batch."""
        self._batch = (self.clock(), events, frozenset(owned), threading.get_ident())

    def batch_finished(self) -> None:
        """Called by the loop after scoring, returned or raised (the gauge goes back to 0
        at the watchdog's next tick)."""
        self._batch = None
        if self._stuck:  # rare: only after a stuck batch; the lock only then
            with self._lock:
                self._stuck = False
                self.readiness.set_model_stuck(False)
            self.log.emit("model_unstuck")

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception as exc:  # the watchdog must outlive its own surprises
                self.log.limited(
                    "watchdog", 60.0, "error", "error", during="watchdog", error=repr(exc)
                )

    def tick(self) -> None:
        """One look (the thread's loop; tests call it directly)."""
        batch = self._batch
        if batch is None:
            if self._shown:  # the gauge is this thread's alone: back to 0 within a tick
                self._shown = False
                self.observer.set_batch_in_progress(0.0)
            return
        started, events, owned, thread_id = batch
        now = self.clock()
        self._shown = True
        self.observer.set_batch_in_progress(now - started)
        calls = self.calls()
        if calls != self._calls_seen[0]:  # isolating: another model call began since
            self._calls_seen = (calls, now)
        elapsed = now - max(started, self._calls_seen[1])
        if elapsed < self.stuck_after_s:
            return
        if not self._stuck:
            with self._lock:
                if self._batch is not batch:  # returned meanwhile
                    return
                self._stuck = True
                self.readiness.set_model_stuck(True)
            self.log.error(
                "model_stuck",
                seconds=round(elapsed, 1),
                events=len(events),
                timeout_s=self.timeout_s,
            )
        self._report_lag(events, owned)
        if self.timeout_s and elapsed >= self.timeout_s and self._batch is batch:
            self._give_up(elapsed, len(events), thread_id)

    def _report_lag(self, events: Sequence[InputEvent], owned: frozenset[Partition]) -> None:
        asked = self._asked
        if asked is not None and asked.wait(0):
            self._asked = None
            try:
                lags: dict[Partition, int] = asked.result()
            except KafkaFailure:
                lags = {}
            for (topic, partition), lag in sorted(lags.items()):
                self.observer.set_lag(topic, partition, lag)
        now = self.clock()
        if self._asked is None and now >= self._next_ask and owned:
            self._next_ask = now + LAG_EVERY_S
            first: dict[Partition, int] = {}
            for e in events:
                first.setdefault((e.topic, e.partition), e.offset)
            self._asked = Call("model_watch_lag", lambda: self._lags(sorted(owned), first))

    def _lags(
        self, partitions: list[Partition], first: dict[Partition, int]
    ) -> dict[Partition, int]:
        """In a helper thread: high watermark minus where the group will read from."""
        ends = self.offsets.stable_and_end(partitions, ASK_TIMEOUT_S)
        committed = self.offsets.ask_committed(partitions, ASK_TIMEOUT_S).result(
            2 * ASK_TIMEOUT_S + 1
        )
        lags: dict[Partition, int] = {}
        for p in partitions:
            start = committed.offsets.get(p, first.get(p))
            if p in ends and start is not None:
                lags[p] = max(ends[p][1] - start, 0)
        return lags

    def _give_up(self, elapsed: float, events: int, thread_id: int) -> None:
        frame = sys._current_frames().get(thread_id)
        stack = traceback.format_stack(frame) if frame is not None else []
        line = (
            f"the model did not return within --model-timeout {self.timeout_s:g}s "
            f"(a batch of {events} events, {elapsed:.1f}s); the scoring thread's stack is "
            f"in the model_timeout log line; exiting so the batch is scored again"
        )
        self.log.error("model_timeout", seconds=round(elapsed, 1), events=events, stack=stack)
        print(f"scoring-worker: error: {line}", file=sys.stderr, flush=True)
        self.exit_process(3)
