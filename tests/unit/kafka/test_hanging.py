"""Hanging transactions (worker.live.hanging): detected past the transaction timeout,
reported, recovered once, then the worker stops with the command that aborts them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import pytest

from schemas.errors import RuntimeFailure
from tests.support.loop_fakes import Clock, RecordingObserver, lines_of, memory_log
from worker.kafka.offsets_admin import consumer_offsets_partition
from worker.kafka.types import Partition
from worker.live.hanging import CHECK_EVERY_S, CLEANUP_MARGIN_S, HangingWatch, WatchSettings

OUT0, OUT1 = ("out", 0), ("out", 1)
SETTINGS = WatchSettings(("out",), "g", 15.0, "b:9092")


class Admin:
    def __init__(self) -> None:
        self.offsets: dict[Partition, tuple[int, int]] = {OUT0: (10, 10), OUT1: (5, 5)}

    def stable_and_end(
        self, partitions: Sequence[Partition], timeout_s: float
    ) -> dict[Partition, tuple[int, int]]:
        return {p: self.offsets.get(p, (7, 9)) for p in partitions}

    def partition_count(self, topic: str, timeout_s: float) -> int | None:
        return 2 if topic == "out" else 10


class Inline:
    """``Call`` answered at once, on the caller's thread."""

    def __init__(self, what: str, operation: Callable[[], Any]) -> None:
        self.operation = operation
        self.outcome: tuple[Any, BaseException | None] | None = None
        self.run()

    def run(self) -> None:
        try:
            self.outcome = (self.operation(), None)
        except BaseException as exc:
            self.outcome = (None, exc)

    def wait(self, timeout_s: float) -> bool:
        return self.outcome is not None

    def result(self) -> Any:
        assert self.outcome is not None
        value, error = self.outcome
        if error is not None:
            raise error
        return value


class Later(Inline):
    """A call answered only when the test says so (``run``)."""

    started: ClassVar[list[Later]] = []

    def __init__(self, what: str, operation: Callable[[], Any]) -> None:
        self.operation, self.outcome = operation, None
        Later.started.append(self)


def make(
    start: Callable[[str, Callable[[], Any]], Inline] = Inline,
) -> tuple[HangingWatch, Admin, Clock, RecordingObserver, list[str], object]:
    admin, clock, observer, recovered = Admin(), Clock(), RecordingObserver(), []
    log, stream = memory_log()
    watch = HangingWatch(admin, SETTINGS, log, observer, recovered.append, clock, start)
    return watch, admin, clock, observer, recovered, stream


def run_for(watch: HangingWatch, clock: Clock, seconds: float, unstable: float = 0) -> None:
    end = clock.now + seconds
    while clock.now < end:
        clock.now += CHECK_EVERY_S
        watch.check({("in", 0): unstable + clock.now} if unstable else {})


def test_a_transaction_the_broker_aborts_in_time_is_not_hanging() -> None:
    watch, admin, clock, observer, recovered, _ = make()
    admin.offsets[OUT1] = (5, 8)  # open
    run_for(watch, clock, 15 + CLEANUP_MARGIN_S - CHECK_EVERY_S)
    admin.offsets[OUT1] = (8, 8)  # aborted by the coordinator
    run_for(watch, clock, 60)
    assert recovered == [] and observer.hanging == set()


def test_a_stuck_last_stable_offset_is_reported_recovered_then_the_worker_stops() -> None:
    watch, admin, clock, observer, recovered, stream = make()
    admin.offsets[OUT1] = (5, 8)
    reported_at: list[float] = []
    watch.recover = lambda why: (recovered.append(why), reported_at.append(clock.now))
    with pytest.raises(RuntimeFailure) as failure:
        run_for(watch, clock, 120)
    assert recovered == ["hanging transaction"]
    # stopped one check after the report, within two transaction timeouts of the first look
    assert clock.now == reported_at[0] + CHECK_EVERY_S and clock.now - CHECK_EVERY_S <= 2 * 15
    assert observer.hanging == {OUT1}
    line = str(failure.value)
    assert "out:1 (last stable offset 5, high watermark 8)" in line
    assert (
        "kafka-transactions.sh --bootstrap-server b:9092 abort --topic out --partition 1 "
        "--start-offset 5" in line
    )
    reported = [x for x in lines_of(stream) if x["event"] == "hanging_transaction"]  # type: ignore[arg-type]
    assert len(reported) == 1


def test_recovery_that_works_clears_the_report() -> None:
    watch, admin, clock, observer, recovered, stream = make()
    admin.offsets[OUT1] = (5, 8)

    def recover(why: str) -> None:  # the new producer's init_transactions aborts it
        recovered.append(why)
        admin.offsets[OUT1] = (8, 8)

    watch.recover = recover
    run_for(watch, clock, 60)
    assert recovered == ["hanging transaction"] and observer.hanging == set()
    events = [x["event"] for x in lines_of(stream)]  # type: ignore[arg-type]
    assert events == ["hanging_transaction", "hanging_transaction_cleared"]


def test_group_offsets_unstable_too_long_name_the_consumer_offsets_partition() -> None:
    watch, _, clock, observer, _, _ = make()
    with pytest.raises(RuntimeFailure) as failure:
        run_for(watch, clock, 120, unstable=1)
    p = consumer_offsets_partition("g", 10)
    assert observer.hanging == {("__consumer_offsets", p)}
    assert f"abort --topic __consumer_offsets --partition {p} --start-offset 7" in str(
        failure.value
    )


def test_the_loop_does_not_wait_for_the_offsets_and_asks_once_at_a_time() -> None:
    Later.started.clear()
    watch, admin, clock, observer, recovered, _ = make(Later)
    admin.offsets[OUT1] = (5, 8)
    run_for(watch, clock, 15 + CLEANUP_MARGIN_S + 5 * CHECK_EVERY_S)
    assert len(Later.started) == 1, "no second request while one is unanswered"
    assert recovered == [] and observer.hanging == set()
    Later.started[0].run()  # answered now: the LSO as it was when first asked
    run_for(watch, clock, 2 * CHECK_EVERY_S)  # taken, then the next request
    assert len(Later.started) == 2 and recovered == []
    Later.started[1].run()  # unmoved since the first request, long ago: hanging
    run_for(watch, clock, CHECK_EVERY_S)
    assert recovered == ["hanging transaction"]
