"""``CommittedReader``'s bookkeeping of its reader consumers, with stand-in readers (the
requests themselves are held against a real broker in
``tests/integration/test_committed_offsets.py``)."""

from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from worker.kafka.committed import REPLACE_AFTER_TIMEOUTS, CommittedReader

P0 = ("in", 0)


class _Reader:
    """A reader whose ``committed`` answers with ``answer`` (a callable)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.closed = False
        self.polls = 0

    def committed(self, tps: list[TopicPartition], timeout_s: float) -> list[TopicPartition]:
        return list(self.answer(tps))

    def poll(self, timeout_s: float) -> None:
        self.polls += 1

    def close(self) -> None:
        self.closed = True


def _timeout(_tps: list[TopicPartition]) -> list[TopicPartition]:
    raise KafkaException(KafkaError(KafkaError._TIMED_OUT))


def _at(offset: int) -> Any:
    return lambda tps: [TopicPartition(tp.topic, tp.partition, offset) for tp in tps]


def test_a_reader_whose_requests_keep_timing_out_is_replaced() -> None:
    made: list[_Reader] = []

    def make(config: dict[str, Any]) -> _Reader:
        made.append(_Reader(_timeout if len(made) == 0 else _at(7)))
        return made[-1]

    reader = CommittedReader({"group.id": "g"}, readers=1, make=make)
    for _ in range(REPLACE_AFTER_TIMEOUTS):
        answer = reader.ask([P0], 0.1).result(5)
        assert answer.unstable == [P0]
    assert made[0].closed and made[0].polls == REPLACE_AFTER_TIMEOUTS
    assert reader.ask([P0], 0.1).result(5).offsets == {P0: 7}  # on a new reader
    assert len(made) == 2 and not made[1].closed
    reader.close()
    assert made[1].closed


def test_a_timeout_then_an_answer_keeps_the_reader() -> None:
    answers = iter([_timeout, _timeout, _at(3), _timeout, _timeout])
    made: list[_Reader] = []

    def make(config: dict[str, Any]) -> _Reader:
        made.append(_Reader(lambda tps: next(answers)(tps)))
        return made[-1]

    reader = CommittedReader({"group.id": "g"}, readers=1, make=make)
    for _ in range(5):
        reader.ask([P0], 0.1).result(5)
    assert len(made) == 1 and not made[0].closed  # never three timeouts in a row
    reader.close()


def test_a_reader_that_cannot_be_made_fails_the_request_not_the_answer() -> None:
    calls = []

    def make(config: dict[str, Any]) -> _Reader:
        calls.append(config)
        if len(calls) > 1:
            raise RuntimeError("no more clients")
        return _Reader(_at(1))

    reader = CommittedReader({"group.id": "g"}, readers=2, make=make)
    first = reader._idle.get()  # the one made at start is busy elsewhere
    answer = reader.ask([P0, ("in", 1)], 0.1).result(5)
    assert set(answer.failed) == {P0, ("in", 1)}
    assert all("no more clients" in why for why in answer.failed.values())
    reader._idle.put(first)
    reader.close()


def test_close_settles_the_requests_still_queued() -> None:
    release = threading.Event()

    def slow(tps: list[TopicPartition]) -> list[TopicPartition]:
        release.wait(5)
        return _at(5)(tps)

    reader = CommittedReader({"group.id": "g"}, readers=1, make=lambda c: _Reader(slow))
    answer = reader.ask([P0, ("in", 1), ("in", 2)], 0.1)
    closing = threading.Thread(target=reader.close)
    closing.start()
    deadline = time.monotonic() + 5
    while not reader._pool._shutdown and time.monotonic() < deadline:  # queued ones cancelled
        time.sleep(0.001)
    release.set()
    closing.join(10)
    result = answer.result(5)  # settled: the one in flight answered, the queued cancelled
    assert result.offsets == {P0: 5}
    assert sorted(result.failed) == [("in", 1), ("in", 2)]
    assert all("cancelled" in why for why in result.failed.values())


def test_readers_never_join_the_group_nor_log() -> None:
    configs: list[dict[str, Any]] = []

    def make(config: dict[str, Any]) -> _Reader:
        configs.append(config)
        return _Reader(_at(0))

    member = {
        "group.id": "g",
        "isolation.level": "read_committed",
        "group.instance.id": "replica-1",
        "partition.assignment.strategy": "cooperative-sticky",
        "debug": "all",
        "sasl.password": "kept: a reader must authenticate",
    }
    CommittedReader(member, make=make).close()
    assert configs == [
        {
            "group.id": "g",
            "isolation.level": "read_committed",
            "sasl.password": "kept: a reader must authenticate",
            "log_level": 0,
        }
    ]
