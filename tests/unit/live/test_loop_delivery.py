"""Delivery: transaction per batch, abort/recreate on failures, fencing stops, at-least-once."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from schemas.errors import RuntimeFailure
from tests.support.loop_fakes import failure, lines_of, memory_log
from worker.kafka.clients import FailureKind, KafkaFailure, Outgoing, Partition
from worker.live.delivery import AtLeastOnce, Backoff, DeliveryBatch, ExactlyOnce

BATCH = DeliveryBatch([Outgoing("out", b"v", b"k")], {("in", 0): 10})


class Status:
    def __init__(self) -> None:
        self.events: list[str] = []

    def unavailable(self, detail: str) -> None:
        self.events.append("down")

    def available(self) -> None:
        self.events.append("up")

    def check(self) -> None:
        pass


class Group:
    def __init__(self) -> None:
        self.commits: list[tuple[dict[Partition, int], bool]] = []

    def group_metadata(self) -> Any:
        return "cgm"

    def commit(self, offsets: dict[Partition, int], asynchronous: bool = False) -> None:
        self.commits.append((offsets, asynchronous))


class Producer:
    """Scripted TransactionalProducer / IdempotentProducer."""

    made: ClassVar[list[Producer]] = []

    def __init__(self, script: dict[str, list[KafkaFailure | None]] | None = None) -> None:
        self.script = script or {}
        self.calls: list[str] = []
        self.failures: list[KafkaFailure] = []
        self.hung = False
        self.closed = False
        Producer.made.append(self)

    def _step(self, name: str) -> None:
        self.calls.append(name)
        queue = self.script.get(name)
        if queue:
            outcome = queue.pop(0)
            if outcome is not None:
                if outcome.code == "_HUNG":
                    self.hung = True
                raise outcome

    def init(self, timeout_s: float) -> None:
        self._step("init")

    def begin(self) -> None:
        self._step("begin")

    def send(self, messages: list[Outgoing]) -> None:
        self._step("send")

    def send_offsets(self, offsets: Any, group: Any, timeout_s: float) -> None:
        assert group == "cgm"
        self._step("send_offsets")

    def commit(self, timeout_s: float) -> None:
        self._step("commit")

    def abort(self, timeout_s: float) -> None:
        self._step("abort")

    def flush(self, timeout_s: float) -> int:
        self._step("flush")
        return 0

    def close(self) -> None:
        self.closed = True


def exactly_once(*scripts: dict[str, list[KafkaFailure | None]]) -> tuple[ExactlyOnce, Status]:
    Producer.made = []
    pending = list(scripts)
    status = Status()
    log, _ = memory_log()
    delivery = ExactlyOnce(
        lambda: Producer(pending.pop(0) if pending else None),  # type: ignore[arg-type,return-value]
        Group(),
        status,
        log,
        Backoff(0.0, 0.0, sleep=lambda _s: None),
    )
    delivery.start()
    return delivery, status


def test_one_transaction_per_batch_with_the_offsets_in_it() -> None:
    delivery, _ = exactly_once()
    assert delivery.deliver(BATCH)
    assert Producer.made[0].calls == ["init", "begin", "send", "send_offsets", "commit"]


def test_abortable_error_aborts_and_asks_for_a_rewind() -> None:
    delivery, _ = exactly_once({"commit": [failure(FailureKind.ABORTABLE)]})
    assert not delivery.deliver(BATCH)
    assert Producer.made[0].calls[-1] == "abort" and len(Producer.made) == 1
    assert delivery.deliver(BATCH)


def test_a_rollback_names_the_refused_message_s_error_else_the_call_s() -> None:
    too_large = KafkaFailure(FailureKind.ABORTABLE, "MSG_SIZE_TOO_LARGE", "refused")
    delivery, _ = exactly_once(
        {
            "commit": [
                failure(FailureKind.ABORTABLE, "_INCONSISTENT"),
                failure(FailureKind.ABORTABLE, "_STATE"),
            ]
        }
    )
    Producer.made[0].failures.append(too_large)  # a delivery report, as the client keeps it
    assert not delivery.deliver(BATCH)
    assert delivery.last_rollback == "MSG_SIZE_TOO_LARGE"
    Producer.made[0].failures.clear()
    assert not delivery.deliver(BATCH)
    assert delivery.last_rollback == "_STATE"


def test_commit_timeouts_are_resumed_not_aborted() -> None:
    delivery, status = exactly_once({"commit": [failure(FailureKind.RETRIABLE)] * 2})
    assert delivery.deliver(BATCH)
    assert Producer.made[0].calls.count("commit") == 3 and "abort" not in Producer.made[0].calls
    assert status.events.count("down") == 2 and status.events[-1] == "up"


def test_a_hung_send_offsets_abandons_the_producer_for_a_new_one() -> None:
    hung = KafkaFailure(FailureKind.RETRIABLE, "_HUNG", "never returned")
    delivery, _ = exactly_once({"send_offsets": [hung]})
    assert not delivery.deliver(BATCH)
    old, new = Producer.made
    assert not old.closed, "a producer with a call still running is never closed"
    assert new.calls == ["init"]
    assert delivery.deliver(BATCH)


def test_a_failed_abort_or_a_fatal_error_recreates_the_producer() -> None:
    delivery, _ = exactly_once(
        {"commit": [failure(FailureKind.ABORTABLE)], "abort": [failure(FailureKind.OTHER)]},
        {"send": [failure(FailureKind.FATAL)]},
    )
    assert not delivery.deliver(BATCH)
    assert not delivery.deliver(BATCH)
    assert len(Producer.made) == 3 and Producer.made[0].closed and Producer.made[1].closed
    assert delivery.deliver(BATCH)


def test_broker_lost_replaces_the_producer_before_the_next_transaction() -> None:
    delivery, _ = exactly_once()
    delivery.broker_lost()
    assert delivery.deliver(BATCH)
    assert len(Producer.made) == 2 and Producer.made[0].closed
    assert Producer.made[1].calls == ["init", "begin", "send", "send_offsets", "commit"]


@pytest.mark.parametrize("kind", [FailureKind.FENCED, FailureKind.AUTH])
def test_fenced_or_unauthorised_stops_the_worker(kind: FailureKind) -> None:
    delivery, _ = exactly_once({"commit": [failure(kind, "PRODUCER_FENCED")]})
    with pytest.raises(RuntimeFailure, match=kind.value):
        delivery.deliver(BATCH)


def test_init_retries_while_the_broker_is_away_with_a_fresh_producer_each_time() -> None:
    delivery, status = exactly_once(
        {"init": [failure(FailureKind.RETRIABLE)]}, {"init": [failure(FailureKind.RETRIABLE)]}
    )
    assert len(Producer.made) == 3 and Producer.made[0].closed and Producer.made[1].closed
    assert status.events == ["down", "down", "up"]
    assert delivery.deliver(BATCH)


def test_at_least_once_commits_after_delivery_and_redoes_failed_batches() -> None:
    group = Group()
    log, buffer = memory_log()
    producers: list[Producer] = []

    def make() -> Producer:
        producers.append(Producer())
        return producers[-1]

    delivery = AtLeastOnce(make, group, Status(), log, Backoff(0.0, 0.0))  # type: ignore[arg-type]
    delivery.start()
    assert delivery.deliver(BATCH)
    assert producers[0].calls == ["send", "flush"]
    assert group.commits == [({("in", 0): 10}, True)]

    original_flush = producers[0].flush

    def failing_flush(timeout_s: float) -> int:
        producers[0].failures.append(failure(FailureKind.OTHER, "_MSG_TIMED_OUT"))
        return original_flush(timeout_s)

    producers[0].flush = failing_flush  # type: ignore[method-assign]
    assert not delivery.deliver(BATCH)
    assert len(group.commits) == 1, "nothing committed for a batch not fully delivered"
    assert [line["event"] for line in lines_of(buffer)] == ["rolled_back"]


def test_a_call_failing_for_too_long_gets_its_producer_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import worker.live.delivery

    monkeypatch.setattr(worker.live.delivery, "GIVE_UP_S", 0.0)
    delivery, _ = exactly_once({"commit": [failure(FailureKind.RETRIABLE)]})
    assert not delivery.deliver(BATCH)  # the loop rewinds to the committed offsets
    old, new = Producer.made
    assert old.closed and new.calls == ["init"]
    assert delivery.deliver(BATCH)


def test_headers_go_to_the_client_in_order_as_a_dict_unless_a_name_repeats() -> None:
    from worker.kafka.producers import client_headers

    two = [("scoring.instance", b"i"), ("scoring.scored_at_ms", b"1")]
    assert list(client_headers(two).items()) == two
    repeated = [("a", b"1"), ("a", b"2")]
    assert client_headers(repeated) == repeated
    assert client_headers([]) is None and client_headers(()) is None
