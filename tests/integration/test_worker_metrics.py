"""Drift and metrics read the way an operator reads them: scraping a running worker's /metrics.

A `scoring-worker run` subprocess scores a demo stream from a real broker; the test polls
``/metrics`` until every event is delivered, then compares the drift gauges with the
thresholds and with the offline computation on the same events (the whole stream fits
the default 10,000-event window).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka_broker import TopicFactory, poll_until
from prometheus_client.parser import text_string_to_metric_families
from worker_harness import Stream, Topics, WorkerProcess, demo_bundle, produce_stream, stop_all

from examples.stream import generate_events, parse_drift
from harness.http import http_get
from harness.ports import free_port
from model_bundles.bundle import load_bundle
from tests.support.drift_offline import offline_report
from tests.support.scored import score_lines

EVENTS = 10_000
NUMERIC = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
FEATURES = (*NUMERIC, "island", "sex")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(port: int, path: str) -> tuple[int, str]:
    return http_get(f"http://127.0.0.1:{port}{path}", timeout_s=5)


def scrape(port: int) -> Samples | None:
    status, text = get(port, "/metrics")
    if status != 200:
        return None
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def drift_stream(directory: Path, seed: int, drift: Sequence[str]) -> Stream:
    lines = list(generate_events(EVENTS, seed, [parse_drift(d) for d in drift]))
    path = directory / f"events-{seed}.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return Stream(lines, [None] * len(lines), path)


def scored_by_worker(
    bootstrap: str, topic_factory: TopicFactory, directory: Path, stream: Stream
) -> Samples:
    """Run a worker over the stream; /metrics once every prediction is delivered."""
    topics = Topics(input=topic_factory(2), output=topic_factory(2), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, stream)
    port = free_port()
    http = ("--metrics-host", "127.0.0.1", "--metrics-port", str(port))
    worker = WorkerProcess(bootstrap, topics, directory, "drift", *http)
    try:

        def delivered_all() -> Samples | None:
            if worker.proc.poll() is not None:
                raise AssertionError(f"worker exited: {worker.log_path.read_text()[-2000:]}")
            samples = scrape(port)
            done = samples and samples.get(("scoring_predictions_produced_total", frozenset()))
            if done != len(stream.lines):
                time.sleep(0.2)
                return None
            return samples

        samples = poll_until("all predictions delivered", 180, delivered_all)
        assert get(port, "/healthz")[0] == 200
        assert get(port, "/readyz")[0] == 200
        code, _ = worker.stop()
        assert code == 0, worker.log_path.read_text()[-2000:]
    finally:
        stop_all([worker])
    assert sample(samples, "scoring_events_consumed_total", topic=topics.input) == EVENTS
    return samples


def offline(stream: Stream) -> dict[str, Any]:
    bundle = load_bundle(demo_bundle())
    return offline_report(bundle, [score_lines(bundle, stream.lines)])


def check_against_offline(samples: Samples, expected: dict[str, Any]) -> None:
    assert sample(samples, "scoring_drift_window_events") == EVENTS
    for i, statistic in enumerate(("psi", "ks", "js")):
        live = sample(samples, "scoring_prediction_drift", statistic=statistic)
        assert live == pytest.approx(expected["prediction"][i], abs=1e-9, rel=0)
        for feature in FEATURES:
            live = sample(samples, "scoring_feature_drift", feature=feature, statistic=statistic)
            assert live == pytest.approx(expected[feature][i], abs=1e-9, rel=0), feature
    assert sample(samples, "scoring_event_latency_seconds_count") == EVENTS
    batches = sample(samples, "scoring_batch_duration_seconds_count")
    assert batches >= 1  # every delivered batch's delivery is timed
    assert sample(samples, "scoring_delivery_duration_seconds_count") == batches


def test_training_distribution_shows_low_drift(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    stream = drift_stream(tmp_path, seed=21, drift=[])
    samples = scored_by_worker(bootstrap, topic_factory, tmp_path, stream)
    check_against_offline(samples, offline(stream))
    assert sample(samples, "scoring_prediction_drift", statistic="psi") < 0.1
    for feature in FEATURES:
        assert sample(samples, "scoring_feature_drift", feature=feature, statistic="psi") < 0.1


def test_shifted_feature_shows_high_psi_and_the_others_low(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    stream = drift_stream(tmp_path, seed=22, drift=["bill_length_mm=+8"])
    samples = scored_by_worker(bootstrap, topic_factory, tmp_path, stream)
    check_against_offline(samples, offline(stream))
    psi = {
        feature: sample(samples, "scoring_feature_drift", feature=feature, statistic="psi")
        for feature in FEATURES
    }
    assert psi["bill_length_mm"] > 0.25
    assert all(value < 0.1 for feature, value in psi.items() if feature != "bill_length_mm"), psi
