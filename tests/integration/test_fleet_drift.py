"""Fleet-wide drift: a real Prometheus scrapes two worker replicas and evaluates the
project's recording rules; the fleet PSI equals PSI computed offline on the union
of both replicas' predictions (read back from the output topic)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka_broker import TopicFactory, consume_all

from examples.stack import (
    prometheus_binary,
    start_prometheus,
    start_worker,
    total,
    wait_for,
    wait_ready,
)
from examples.stream import generate_events, parse_drift
from model_bundles.build import build_from_config
from model_bundles.bundle import load_bundle
from model_bundles.reference import CategoricalReference

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "scoring-worker")
EVENTS = 4_000
EPS = 1e-4


def offline_psi(live_counts: Counter[str], reference: CategoricalReference) -> float:
    labels = reference.bin_labels()
    n = sum(live_counts.values())
    psi = 0.0
    for label, ref in zip(labels, reference.proportions, strict=True):
        live = max(live_counts.get(label, 0) / n, EPS)
        ref = max(ref, EPS)
        psi += (live - ref) * math.log(live / ref)
    return psi


@pytest.fixture()
def prometheus_or_skip() -> None:
    if prometheus_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed (make deploy-tools installs it)")
        pytest.skip("prometheus is not installed: run make deploy-tools")


def test_fleet_psi_over_two_replicas_equals_offline_psi(
    prometheus_or_skip: None, bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    bundle_dir = tmp_path / "bundle"
    build_from_config(
        REPO / "examples/penguins/config.toml", REPO / "examples/penguins/penguins.csv", bundle_dir
    )
    reference = load_bundle(bundle_dir).reference.prediction
    assert isinstance(reference, CategoricalReference)
    events_in, predictions = topic_factory(partitions=4), topic_factory(partitions=4)
    args = ["--bundle", str(bundle_dir), "--bootstrap-servers", bootstrap,
            "--input-topic", events_in, "--output-topic", predictions,
            "--no-dlq", "--group-id", f"fleet-{events_in}"]  # fmt: skip
    workers = [start_worker(CLI, f"replica-{i}", args, tmp_path) for i in range(2)]
    prometheus = None
    try:
        wait_ready(workers)
        drift = [parse_drift("island=Dream@0.6")]
        lines = b"\n".join(generate_events(EVENTS, seed=21, drift=drift)) + b"\n"
        (tmp_path / "events.jsonl").write_bytes(lines)
        publish = [CLI, "publish", "--bootstrap-servers", bootstrap, "--topic", events_in,
                   "--input", str(tmp_path / "events.jsonl"),
                   # keyed: unkeyed messages go where librdkafka's sticky partitioner
                   # puts whole batches, possibly all in one replica's partitions
                   "--key-field", "event_id"]  # fmt: skip
        subprocess.run(publish, check=True, capture_output=True)

        def delivered() -> list[float]:
            return [total([w.samples()], "scoring_predictions_produced_total") for w in workers]

        wait_for("every prediction delivered", lambda: sum(delivered()) >= EVENTS, 120)
        per_replica = delivered()
        assert all(n > 0 for n in per_replica), f"one replica got no partitions: {per_replica}"

        prometheus = start_prometheus(workers, tmp_path / "prometheus", name=events_in)
        assert prometheus is not None
        fleet = _fleet_psi_after_full_scrape(prometheus)
    finally:
        codes = [w.stop() for w in workers]
        if prometheus is not None:
            prometheus.stop()
    assert codes == [0, 0]

    records = consume_all(bootstrap, predictions, expected_count=EVENTS, deadline_s=60)
    labels = Counter(str(orjson.loads(r.value or b"{}")["prediction"]) for r in records)
    expected = offline_psi(labels, reference)
    assert expected > 0.01  # the drift knob moved the predictions: not a trivially zero PSI
    assert fleet == pytest.approx(expected, abs=1e-6)


def _fleet_psi_after_full_scrape(prometheus: object) -> float:
    from examples.stack import Prometheus

    assert isinstance(prometheus, Prometheus)
    seen: list[float] = []

    def scraped_all() -> bool:
        result = prometheus.query("sum(scoring_predictions_produced_total)")
        if result and float(result[0]["value"][1]) >= EVENTS:
            seen.append(float(result[0]["value"][0]))
            return True
        return False

    wait_for("Prometheus to scrape every prediction", scraped_all, 60, every_s=0.5)
    fleet: list[float] = []

    def evaluated() -> bool:
        stamp = prometheus.query("timestamp(scoring:prediction_psi:fleet_total)")
        if not stamp or float(stamp[0]["value"][1]) <= seen[0]:
            return False
        fleet.append(float(prometheus.query("scoring:prediction_psi:fleet_total")[0]["value"][1]))
        return True

    wait_for("the recording rule to be evaluated on those scrapes", evaluated, 60, every_s=0.5)
    return fleet[0]
