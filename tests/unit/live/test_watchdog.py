"""The model watchdog (worker.live.watchdog): seen from outside the loop, then exit 3."""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from worker.core.events import InputEvent
from worker.kafka.types import CommittedOffsets, Partition
from worker.live.watchdog import ModelWatchdog
from worker.logs import EventLog

P0, P1 = ("in", 0), ("in", 1)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Offsets:
    def ask_committed(self, partitions: Sequence[Partition], timeout_s: float) -> Future[Any]:
        done: Future[Any] = Future()
        done.set_result(CommittedOffsets(offsets={P0: 40}, missing=[P1]))
        return done

    def stable_and_end(
        self, partitions: Sequence[Partition], timeout_s: float
    ) -> dict[Partition, tuple[int, int]]:
        return {P0: (50, 50), P1: (9, 9)}


class _Seen:
    def __init__(self) -> None:
        self.in_progress: list[float] = []
        self.lags: dict[Partition, int] = {}
        self.stuck: list[bool] = []
        self.exits: list[int] = []

    def set_batch_in_progress(self, seconds: float) -> None:
        self.in_progress.append(seconds)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lags[(topic, partition)] = lag

    def set_model_stuck(self, stuck: bool) -> None:
        self.stuck.append(stuck)


def _watchdog(timeout_s: float = 10.0) -> tuple[ModelWatchdog, _Seen, _Clock, io.StringIO]:
    seen, clock, out = _Seen(), _Clock(), io.StringIO()
    log = EventLog(out)
    dog = ModelWatchdog(
        timeout_s, _Offsets(), seen, seen, log, clock, exit_process=seen.exits.append
    )
    return dog, seen, clock, out


EVENTS = [InputEvent(b"{}", topic="in", partition=1, offset=o) for o in (3, 4, 5)]


def _lags_after_ask(dog: ModelWatchdog, seen: _Seen) -> None:
    dog.tick()  # asks in a helper thread
    assert dog._asked is not None and dog._asked.wait(5)
    dog.tick()  # reports the answer


def test_a_batch_that_returns_in_time_leaves_no_trace() -> None:
    dog, seen, clock, out = _watchdog()
    dog.batch_started(EVENTS, {P0, P1})
    clock.now += 4.5
    dog.tick()
    dog.batch_finished()
    dog.tick()
    assert seen.in_progress == [4.5, 0.0] and seen.stuck == [] and seen.exits == []
    assert out.getvalue() == ""


def test_past_half_the_timeout_not_ready_and_lag_from_the_broker() -> None:
    dog, seen, clock, out = _watchdog()
    dog.batch_started(EVENTS, {P0, P1})
    clock.now += 5.0
    _lags_after_ask(dog, seen)
    assert seen.stuck == [True] and seen.exits == []
    # committed 40 of 50 on P0; P1 never committed: from the batch's first offset, 3 of 9
    assert seen.lags == {P0: 10, P1: 6}
    assert '"event":"model_stuck"' in out.getvalue().replace(" ", "")
    dog.batch_finished()  # it returned after all: ready again
    assert seen.stuck == [True, False]


def test_at_the_timeout_the_stack_is_logged_and_the_process_exits_3() -> None:
    dog, seen, clock, out = _watchdog()
    dog.batch_started(EVENTS, {P0})
    clock.now += 10.0
    dog.tick()
    assert seen.exits == [3]
    timeout_line = next(x for x in out.getvalue().splitlines() if "model_timeout" in x)
    assert "test_at_the_timeout_the_stack_is_logged" in timeout_line  # this thread's stack


def test_timeout_0_reports_but_never_exits() -> None:
    dog, seen, clock, _ = _watchdog(timeout_s=0)
    dog.batch_started(EVENTS, {P0})
    clock.now += 3600
    dog.tick()
    assert seen.exits == [] and seen.stuck == [True]


def test_a_batch_being_isolated_is_not_stuck_while_its_model_calls_return() -> None:
    calls = [0]
    seen, clock, out = _Seen(), _Clock(), io.StringIO()
    dog = ModelWatchdog(
        10.0, _Offsets(), seen, seen, EventLog(out), clock, seen.exits.append, lambda: calls[0]
    )
    dog.batch_started(EVENTS, {P0})
    for _ in range(8):  # 32 s in all, a call every 4 s
        clock.now += 4.0
        calls[0] += 1
        dog.tick()
    assert seen.stuck == [] and seen.exits == [] and seen.in_progress[-1] == 32.0
    clock.now += 10.0  # then one call does not return
    dog.tick()
    assert seen.stuck == [True] and seen.exits == [3]
