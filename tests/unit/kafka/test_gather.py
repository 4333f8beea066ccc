"""How the Kafka edge forms a micro-batch (``worker.kafka.clients.gather``), scripted."""

from __future__ import annotations

from typing import Any

from worker.kafka.clients import gather


class ScriptedConsume:
    """``Consumer.consume`` that answers each call with the next scripted batch."""

    def __init__(self, *answers: list[Any]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[int, float]] = []

    def __call__(self, limit: int, timeout_s: float) -> list[Any]:
        self.calls.append((limit, timeout_s))
        answer = self.answers.pop(0) if self.answers else []
        assert len(answer) <= limit
        return answer


def test_what_has_arrived_goes_at_once_without_waiting() -> None:
    consume = ScriptedConsume(["a", "b", "c"])
    assert gather(consume, 5000, linger_s=0.005, idle_wait_s=0.1) == ["a", "b", "c"]
    assert consume.calls == [(5000, 0)]


def test_a_backlog_fills_the_batch_to_its_limit_in_one_call() -> None:
    consume = ScriptedConsume(list(range(4)))
    assert gather(consume, 4, linger_s=0.005, idle_wait_s=0.1) == [0, 1, 2, 3]
    assert consume.calls == [(4, 0)]


def test_after_an_idle_wait_the_first_event_lingers_for_others() -> None:
    consume = ScriptedConsume([], ["first"], ["second", "third"])
    assert gather(consume, 100, linger_s=0.005, idle_wait_s=0.1) == ["first", "second", "third"]
    assert consume.calls == [(100, 0), (1, 0.1), (99, 0.005)]


def test_nothing_arrives_within_the_idle_wait() -> None:
    consume = ScriptedConsume([], [])
    assert gather(consume, 100, linger_s=0.005, idle_wait_s=0.1) == []
    assert consume.calls == [(100, 0), (1, 0.1)]


def test_a_batch_of_one_does_not_linger() -> None:
    consume = ScriptedConsume([], ["only"])
    assert gather(consume, 1, linger_s=0.005, idle_wait_s=0.1) == ["only"]
    assert consume.calls == [(1, 0), (1, 0.1)]
