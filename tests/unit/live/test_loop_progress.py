"""A worker that cannot deliver is visible in its metrics (issue 19, case 1), against fakes.

The loop drives a real ``WorkerMetrics``; every delivery is rolled back, as with an
output topic whose ``max.message.bytes`` no record fits under.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from model_bundles.bundle import Bundle
from tests.support.loop_fakes import TOPIC, Clock, Connector, FakeSource, memory_log
from tests.support.promtext import value
from tests.support.scored import stream_lines
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer
from worker.live.loop import Worker
from worker.live.progress import Progress
from worker.live.settings import WorkerSettings
from worker.monitoring.drift import DriftSettings
from worker.monitoring.metrics import WorkerMetrics

SETTINGS = {"bundle": "b", "bootstrap_servers": "k:1", "input_topic": TOPIC}


def stuck_worker(
    bundle: Bundle, events: int, rollbacks: int
) -> tuple[Worker, WorkerMetrics, CollectorRegistry, Clock]:
    clock = Clock()
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, bundle, DriftSettings(), clock=clock)
    source = FakeSource({0: stream_lines(events, seed=19)})
    connector = Connector(source)
    connector.fake_delivery.outcomes = [False] * rollbacks
    settings = WorkerSettings(
        **SETTINGS, output_topic="out", dlq_topic="dlq", instance_id="t", max_batch_events=100
    )
    log, _ = memory_log()
    worker = Worker(settings, BatchScorer(bundle), connector, log, metrics, clock)
    source.subscribe([TOPIC], worker)
    return worker, metrics, registry, clock


def test_a_worker_rolling_back_every_batch_shows_lag_rollbacks_and_not_ready(
    penguins_bundle: Bundle,
) -> None:
    worker, metrics, registry, clock = stuck_worker(penguins_bundle, events=300, rollbacks=6)
    # Each step reads 100 events and rolls them back; the partition then waits for its
    # committed offset (worker.live.positions), so not every step reads: step until 6.
    steps = 0
    while worker.summary.rolled_back < 6 and steps < 20:
        clock.now += 10.0
        worker._step()
        steps += 1

    assert value(registry, "scoring_consumer_lag", topic=TOPIC, partition="0") == 300
    assert value(registry, "scoring_events_consumed_total", topic=TOPIC) == 100  # read once
    assert value(registry, "scoring_predictions_produced_total") == 0
    assert value(registry, "scoring_transactions_rolled_back_total", reason="scripted") == 6
    assert value(registry, "scoring_seconds_since_last_commit") == 10.0 * steps
    assert value(registry, "scoring_ready") == 0 and not metrics.is_ready()

    for _ in range(3):  # delivery works again: the batches go through
        clock.now += 1.0
        worker._step()

    assert value(registry, "scoring_consumer_lag", topic=TOPIC, partition="0") == 0
    assert value(registry, "scoring_events_consumed_total", topic=TOPIC) == 300
    assert value(registry, "scoring_predictions_produced_total") == 300
    assert value(registry, "scoring_seconds_since_last_commit") == 0.0
    assert value(registry, "scoring_ready") == 1 and metrics.is_ready()


def test_consumed_series_and_lag_exist_before_anything_is_delivered(
    penguins_bundle: Bundle,
) -> None:
    worker, _, registry, _ = stuck_worker(penguins_bundle, events=0, rollbacks=0)
    worker._step()  # an empty poll
    assert value(registry, "scoring_events_consumed_total", topic=TOPIC) == 0
    assert value(registry, "scoring_consumer_lag", topic=TOPIC, partition="0") == 0
    assert value(registry, "scoring_ready") == 1


class Counts:
    """A ProgressObserver and status that only count."""

    def __init__(self) -> None:
        self.read = 0
        self.delivering: list[bool] = []

    def events_read(self, topic: str, count: int) -> None:
        self.read += count

    def set_lag(self, topic: str, partition: int, lag: int) -> None: ...
    def forget_partition(self, topic: str, partition: int) -> None: ...
    def committed(self) -> None: ...
    def rolled_back(self, reason: str) -> None: ...

    def set_delivering(self, delivering: bool) -> None:
        self.delivering.append(delivering)


def events(partition: int, offsets: range) -> list[InputEvent]:
    return [InputEvent(b"{}", None, TOPIC, partition, o) for o in offsets]


def test_events_read_again_after_rollbacks_are_counted_once() -> None:
    counts = Counts()
    progress = Progress(counts, counts, lambda _partitions: {})
    progress.read(TOPIC, events(0, range(0, 10)) + events(1, range(0, 5)))
    progress.delivered(False, "X")  # rewound to 0 on both partitions
    progress.read(TOPIC, events(0, range(0, 4)) + events(1, range(0, 8)))  # 3 new on p1
    progress.delivered(False, "X")
    progress.read(TOPIC, events(0, range(0, 12)) + events(1, range(0, 8)))  # 2 new on p0
    progress.delivered(True, "")
    progress.read(TOPIC, events(0, range(12, 20)))
    assert counts.read == 15 + 3 + 2 + 8
    assert counts.delivering == [False, False, True]
    progress.delivered(False, "X")
    progress.forget([(TOPIC, 0)])  # another replica reads it now; back later: new to us
    progress.read(TOPIC, events(0, range(12, 20)))
    assert counts.read == 28 + 8
