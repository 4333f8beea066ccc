"""The loop's parts are wired once, in order: a broker lost reaches delivery, whichever
part saw it, even though delivery is built after the health it reports to."""

from __future__ import annotations

from model_bundles.bundle import Bundle
from tests.support.loop_fakes import Connector, FakeSource, RecordingObserver, failure, memory_log
from worker.core.scoring import BatchScorer
from worker.kafka.clients import FailureKind
from worker.live.loop import Worker
from worker.live.settings import WorkerSettings

SETTINGS = {"bundle": "b", "bootstrap_servers": "k:1", "input_topic": "in", "output_topic": "out"}


def test_each_broker_outage_tells_delivery_once(penguins_bundle: Bundle) -> None:
    connector = Connector(FakeSource({0: []}))
    log, _ = memory_log()
    worker = Worker(
        WorkerSettings(**SETTINGS), BatchScorer(penguins_bundle), connector, log,
        RecordingObserver(),
    )  # fmt: skip
    delivery = connector.fake_delivery
    worker.health.on_kafka_error(failure(FailureKind.RETRIABLE, "_TRANSPORT", broker_down=True))
    worker.health.unavailable("again, while still down")
    assert delivery.lost == 1
    worker.health.available()
    worker.health.unavailable("a second outage")
    assert delivery.lost == 2
