"""Where partitions start (worker.live.positions): the committed offset, the beginning when
there is none, and blocked (not read, not ready) while the offsets cannot be had."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from tests.support.loop_fakes import (
    TOPIC,
    Clock,
    FakeSource,
    RecordingObserver,
    lines_of,
    memory_log,
)
from worker.kafka.types import CommittedOffsets, FailureKind, KafkaFailure
from worker.live.positions import Positions

P0, P1 = (TOPIC, 0), (TOPIC, 1)


def make(source: FakeSource) -> tuple[Positions, Clock, RecordingObserver, list[bool], Any]:
    clock, observer, blocked = Clock(), RecordingObserver(), []
    log, stream = memory_log()
    positions = Positions(source, source, log, observer, blocked.append, clock, grace_s=5)
    source.listener = object()  # type: ignore[assignment]
    source.assigned = [P0, P1]
    return positions, clock, observer, blocked, stream


def test_partitions_start_at_the_committed_offset_or_the_beginning() -> None:
    source = FakeSource({0: [b"{}"] * 10, 1: [b"{}"] * 10})
    source.committed_offsets = {P0: 7}
    positions, _, _, blocked, stream = make(source)
    positions.assigned([P0, P1])
    assert source.started == set()  # claimed, not read yet
    positions.serve()
    assert source.started == {P0, P1} and source.position == {P0: 7, P1: 0}
    assert blocked[-1] is False
    line = lines_of(stream)[-1]
    assert line["event"] == "start_offsets"
    assert line["offsets"] == {"in:0": 7} and line["from_beginning"] == ["in:1"]


def test_unstable_offsets_block_after_the_grace_then_start_once_stable() -> None:
    source = FakeSource({0: [b"{}"] * 10, 1: [b"{}"] * 10})
    source.committed_offsets = {P0: 3, P1: 4}
    source.unstable = {P0}
    positions, clock, observer, blocked, stream = make(source)
    positions.assigned([P0, P1])
    positions.serve()
    assert source.started == {P1} and not positions.blocked
    clock.now += 4
    positions.serve()
    assert not positions.blocked and positions.unstable_for() == {P0: 4}
    clock.now += 2
    positions.serve()  # past the grace: blocked, said once
    positions.serve()
    assert positions.blocked and blocked[-1] is True
    assert observer.blocked == {P0: "unstable_offsets"}
    assert [line["event"] for line in lines_of(stream)].count("partition_blocked") == 1
    source.unstable.clear()
    clock.now += 10  # past any backoff
    positions.serve()
    assert source.position[P0] == 3 and P0 in source.started
    assert not positions.blocked and blocked[-1] is False and observer.blocked == {P0: None}


def test_an_answer_for_a_partition_assigned_again_meanwhile_is_not_used() -> None:
    source = FakeSource({0: [b"{}"] * 10})
    pending: list[Future[Any]] = []

    def ask_later(partitions: Any, timeout_s: float) -> Future[Any]:
        pending.append(Future())
        return pending[-1]

    source.ask_committed = ask_later  # type: ignore[method-assign]
    positions, _, _, _, _ = make(source)
    positions.assigned([P0])
    positions.serve()
    positions.forget([P0])
    positions.assigned([P0])  # revoked and assigned again while the request was out
    pending[0].set_result(CommittedOffsets(offsets={P0: 2}))
    positions.serve()
    assert P0 not in source.started  # the stale answer (2) was dropped, asked again
    assert len(pending) == 2
    pending[1].set_result(CommittedOffsets(offsets={P0: 5}))
    positions.serve()
    assert source.position[P0] == 5


def test_offset_out_of_range_pauses_and_blocks_the_partition() -> None:
    source = FakeSource({0: [b"{}"] * 10})
    positions, _, observer, blocked, stream = make(source)
    positions.assigned([P0])
    positions.serve()
    problem = KafkaFailure(FailureKind.OTHER, "_AUTO_OFFSET_RESET", "offset 3 out of range")
    problem.partition = P0
    assert positions.on_failure(problem)
    assert P0 in source.paused and positions.blocked and blocked[-1] is True
    assert observer.blocked == {P0: "offset_out_of_range"}
    asked = len(source.asked)
    positions.serve()
    assert len(source.asked) == asked  # an operator decides: not asked again
    other = KafkaFailure(FailureKind.OTHER, "_MSG_TIMED_OUT", "x")
    assert not positions.on_failure(other)
    assert lines_of(stream)[-1]["event"] == "partition_blocked"


def test_rewind_pauses_and_resumes_at_the_committed_offset() -> None:
    source = FakeSource({0: [b"{}"] * 10})
    positions, _, _, _, _ = make(source)
    positions.assigned([P0])
    positions.serve()
    source.committed_offsets = {P0: 4}
    positions.rewind([P0])
    assert P0 in source.paused
    positions.serve()
    assert P0 not in source.paused and source.seeks == [{P0: 4}]
