"""The run loop against fakes: batching, rewinds, rebalances, stops, health, log lines."""

from __future__ import annotations

import orjson
import pytest

from examples.stream import generate_labelled_events
from model_bundles.bundle import Bundle
from schemas.errors import RuntimeFailure
from tests.support.loop_fakes import (
    TOPIC,
    Clock,
    Connector,
    FakeSource,
    RecordingObserver,
    failure,
    lines_of,
    memory_log,
)
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer
from worker.kafka.clients import FailureKind
from worker.live.loop import Worker
from worker.live.ports import first_offsets, next_offsets
from worker.live.settings import WorkerSettings

BASE = {"bundle": "b", "bootstrap_servers": "k:1", "input_topic": TOPIC, "output_topic": "out"}


def settings(**extra: object) -> WorkerSettings:
    return WorkerSettings(**{**BASE, "dlq_topic": "dlq", "instance_id": "t", **extra})


def stream(n: int, seed: int = 1, poison: float = 0.0) -> list[tuple[bytes, str | None]]:
    return list(generate_labelled_events(n, seed, poison_rate=poison))


def make_worker(
    bundle: Bundle, source: FakeSource, clock: Clock | None = None, **extra: object
) -> tuple[Worker, Connector, RecordingObserver]:
    log, buffer = memory_log()
    connector = Connector(source)
    observer = RecordingObserver()
    worker = Worker(
        settings(**extra), BatchScorer(bundle), connector, log, observer, clock or Clock()
    )
    worker.log_lines = lambda: lines_of(buffer)  # type: ignore[attr-defined]
    source.subscribe([TOPIC], worker)  # as run() does; tests may then drive _step() alone
    worker.health.starting = False  # as run() does once it has joined the group
    return worker, connector, observer


def test_offsets_helpers() -> None:
    events = [InputEvent(b"", None, "t", p, o) for p, o in [(0, 5), (1, 2), (0, 6), (1, 3)]]
    assert next_offsets(events) == {("t", 0): 7, ("t", 1): 4}
    assert first_offsets(events) == {("t", 0): 5, ("t", 1): 2}


def test_batches_are_bounded_and_every_event_is_delivered_once(
    penguins_bundle: Bundle,
) -> None:
    labelled = stream(300, poison=0.1)
    source = FakeSource(
        {0: [line for line, _ in labelled[:150]], 1: [x for x, _ in labelled[150:]]}
    )
    worker, connector, observer = make_worker(
        penguins_bundle, source, max_batch_events=40, max_events=300
    )

    summary = worker.run()

    batches = connector.fake_delivery.delivered
    assert summary.stop_reason == "max_events" and summary.consumed == 300
    assert all(len(b.messages) <= 40 for b in batches)
    outputs = [m for b in batches for m in b.messages if m.topic == "out"]
    letters = [m for b in batches for m in b.messages if m.topic == "dlq"]
    assert len(outputs) == sum(r is None for _, r in labelled) == summary.produced
    assert len(letters) == sum(r is not None for _, r in labelled)
    assert {dict(m.headers)["scoring.reason"].decode() for m in letters} <= {
        "invalid_json",
        "not_an_object",
        "missing_feature",
        "wrong_type",
        "non_finite",
    }
    assert all(m.key and m.key.startswith(b"k") for m in outputs)  # key = input key
    assert source.committed_offsets == {(TOPIC, 0): 150, (TOPIC, 1): 150}
    assert sum(observer.scored) == 300 and observer.lags == {(TOPIC, 0): 0, (TOPIC, 1): 0}
    assert source.closed and connector.fake_delivery.closed
    events = [line["event"] for line in worker.log_lines()]  # type: ignore[attr-defined]
    # nothing per message or per batch
    assert events == ["start", "assigned", "start_offsets", "stop"]


def test_rolled_back_batch_is_read_again_from_the_committed_offsets(
    penguins_bundle: Bundle,
) -> None:
    source = FakeSource({0: [line for line, _ in stream(50)]})
    worker, connector, _ = make_worker(penguins_bundle, source, max_batch_events=20, max_events=50)
    connector.fake_delivery.outcomes = [True, False, True, True]

    summary = worker.run()

    assert summary.rolled_back == 1 and summary.consumed == 50
    assert source.seeks == [{(TOPIC, 0): 20}]  # the committed offset, not the batch's own
    ids = [
        orjson.loads(m.value or b"")["event_id"]
        for b in connector.fake_delivery.delivered
        for m in b.messages
    ]
    assert len(ids) == len(set(ids)) == 50


def test_events_of_partitions_revoked_during_the_poll_are_dropped(
    penguins_bundle: Bundle,
) -> None:
    source = FakeSource({0: [x for x, _ in stream(30)], 1: [x for x, _ in stream(30, seed=2)]})
    worker, connector, observer = make_worker(penguins_bundle, source, max_batch_events=100)
    fired: list[int] = []

    def revoke_partition_1_mid_poll(src: FakeSource) -> None:
        # the callback runs inside the poll, whose messages still include partition 1's
        if not fired and src.listener is not None and len(src.started) == 2:
            fired.append(1)
            src.listener.on_revoked([(TOPIC, 1)])

    source.before_poll.append(revoke_partition_1_mid_poll)
    worker._step()  # assigned: both partitions wait for their start offsets
    assert connector.fake_delivery.delivered == []
    worker._step()  # started at the beginning (no committed offsets), revoked mid-poll

    delivered = connector.fake_delivery.delivered
    assert len(delivered) == 1
    assert {p for (_, p) in delivered[0].offsets} == {0}
    assert (TOPIC, 1) in observer.forgotten


def test_idle_timeout_stops_and_an_outage_is_not_idleness(penguins_bundle: Bundle) -> None:
    clock = Clock()
    source = FakeSource({0: []})
    worker, _, _ = make_worker(penguins_bundle, source, clock, idle_timeout_s=5)
    worker.health.unavailable("test outage")
    source.metadata_error = failure(FailureKind.RETRIABLE)
    for _ in range(3):
        clock.now += 4
        worker._step()
    assert not worker.stopping
    source.metadata_error = None
    clock.now += 10  # next probe due: the broker answers, 10 s after the last outage step
    worker._step()
    assert worker.stopping and worker.summary.stop_reason == "idle"


def test_waiting_for_an_assignment_is_not_idleness(penguins_bundle: Bundle) -> None:
    """Issue 28: members killed with SIGKILL hold the partitions until their sessions
    expire; an unassigned worker must not stop as idle (exit 0) with events waiting."""
    clock = Clock()
    source = FakeSource({0: [x for x, _ in stream(20)]})
    assign = source.assign
    source.assign = lambda partitions: None  # type: ignore[method-assign]
    worker, _, _ = make_worker(penguins_bundle, source, clock, idle_timeout_s=5)
    for _ in range(10):
        clock.now += 4
        worker._step()
    assert not worker.stopping and worker.summary.consumed == 0
    source.assign = assign  # type: ignore[method-assign]
    while not worker.stopping:
        clock.now += 1
        worker._step()
    assert worker.summary.stop_reason == "idle" and worker.summary.consumed == 20


def test_events_waiting_on_an_owned_partition_are_not_idleness(penguins_bundle: Bundle) -> None:
    clock = Clock()
    source = FakeSource({0: [x for x, _ in stream(5)], 1: []})
    worker, _, _ = make_worker(penguins_bundle, source, clock, idle_timeout_s=5)
    worker._step()
    source.paused.add((TOPIC, 0))  # fetched no more, yet its end offset says 5 wait
    source.position[(TOPIC, 0)] = 0
    for _ in range(10):
        clock.now += 4
        worker._step()
    assert not worker.stopping
    source.paused.clear()
    while not worker.stopping:
        clock.now += 1
        worker._step()
    assert worker.summary.stop_reason == "idle"


def test_readiness_follows_assignment_broker_and_stop(penguins_bundle: Bundle) -> None:
    source = FakeSource({0: [x for x, _ in stream(5)]})
    worker, connector, observer = make_worker(penguins_bundle, source)
    worker._step()
    worker.health.unavailable("down")
    worker.health.available()
    worker.request_stop("SIGTERM")
    assert observer.ready == [True, False, True, False]
    assert connector.fake_delivery.lost == 1
    lines = worker.log_lines()  # type: ignore[attr-defined]
    assert [line["event"] for line in lines if "broker" in str(line["event"])] == [
        "broker_unavailable",
        "broker_available",
    ]


def test_stop_request_finishes_the_batch_in_hand(penguins_bundle: Bundle) -> None:
    source = FakeSource({0: [x for x, _ in stream(100)]})
    worker, _, _ = make_worker(penguins_bundle, source, max_batch_events=30)
    source.before_poll.append(lambda s: s.started and worker.request_stop("SIGTERM"))

    summary = worker.run()

    assert summary.stop_reason == "SIGTERM" and summary.consumed == 30
    assert source.committed_offsets == {(TOPIC, 0): 30}
    assert source.closed


@pytest.mark.parametrize("kind", [FailureKind.AUTH, FailureKind.FENCED, FailureKind.FATAL])
def test_fatal_kafka_errors_end_the_run(penguins_bundle: Bundle, kind: FailureKind) -> None:
    source = FakeSource({0: [x for x, _ in stream(10)]})
    source.failures.append(failure(kind, "TOPIC_AUTHORIZATION_FAILED"))
    worker, _, _ = make_worker(penguins_bundle, source)
    with pytest.raises(RuntimeFailure, match=kind.value):
        worker.run()
    assert source.closed
    assert worker.log_lines()[-1]["event"] == "stop"  # type: ignore[attr-defined]


def test_broker_gone_too_long_ends_the_run(penguins_bundle: Bundle) -> None:
    clock = Clock()
    source = FakeSource({0: []})
    worker, _, _ = make_worker(penguins_bundle, source, clock, broker_timeout_s=30)
    worker.health.on_kafka_error(
        failure(FailureKind.RETRIABLE, "_ALL_BROKERS_DOWN", broker_down=True)
    )
    clock.now += 31
    with pytest.raises(RuntimeFailure, match="unreachable"):
        worker.health.check()


def test_a_missing_topic_is_refused_before_joining(penguins_bundle: Bundle) -> None:
    source = FakeSource({0: []})
    source.topics.discard("dlq")
    worker, connector, _ = make_worker(penguins_bundle, source)
    with pytest.raises(RuntimeFailure, match="topic dlq does not exist"):
        worker.run()
    assert not source.assigned and not connector.fake_delivery.started
    assert source.closed and connector.fake_delivery.closed


def test_a_failed_start_closes_the_clients_before_it_is_raised(penguins_bundle: Bundle) -> None:
    """Left open, the clients are destroyed while the interpreter finalizes, when
    librdkafka's threads may still call into Python: the process then dies of SIGSEGV
    (exit -11) instead of exit 3 (seen in the untrusted-certificate run under load)."""
    source = FakeSource({0: []})
    source.metadata_error = RuntimeFailure("auth: _SSL: certificate verify failed")
    worker, connector, _ = make_worker(penguins_bundle, source)
    with pytest.raises(RuntimeFailure, match="certificate verify failed"):
        worker.run()
    assert source.closed and connector.fake_delivery.closed
