"""`publish` returns once its transaction is readable: a commit is answered when the
coordinator has logged it, before the markers reach the partitions (a `record` started
then read an empty topic in one CI run)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from worker.kafka.types import Partition
from worker.kafka.writer import stable_past

A, B = ("t", 0), ("t", 1)


Marks = Mapping[Partition, tuple[int, int]]


def answers(*marks: Marks) -> tuple[list[int], Callable[[], Marks]]:
    asked: list[int] = []

    def ask() -> Marks:
        asked.append(1)
        return marks[min(len(asked), len(marks)) - 1]

    return asked, ask


def test_it_waits_until_every_partition_has_its_markers() -> None:
    # offsets 0..9 written to each partition; the marker takes offset 10
    asked, ask = answers(
        {A: (0, 11), B: (0, 11)}, {A: (11, 11), B: (0, 11)}, {A: (11, 11), B: (11, 11)}
    )
    assert stable_past(ask, {A: 9, B: 9}, time.monotonic() + 30, pause_s=0)
    assert len(asked) == 3


def test_a_partition_missing_from_the_answer_is_asked_again() -> None:
    asked, ask = answers({}, {A: (5, 5)})
    assert stable_past(ask, {A: 3}, time.monotonic() + 30, pause_s=0)
    assert len(asked) == 2


def test_past_the_deadline_it_gives_up_and_says_so() -> None:
    asked, ask = answers({A: (0, 11)})
    assert not stable_past(ask, {A: 9}, time.monotonic() - 1, pause_s=0)
    assert len(asked) == 1
