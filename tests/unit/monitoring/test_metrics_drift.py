"""WorkerMetrics' drift side: bin series, bounded labels, drift gauges, the window, threads."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator

import numpy as np
import orjson
from prometheus_client import CollectorRegistry, generate_latest

from model_bundles.bundle import Bundle
from tests.support.promtext import exercise, exported, series, value
from tests.support.scored import score_lines, stream_batches, stream_lines
from worker.monitoring.drift import DriftSettings
from worker.monitoring.metrics import WorkerMetrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_every_bin_has_a_series_from_the_start(
    metrics: WorkerMetrics, registry: CollectorRegistry, penguins_bundle: Bundle
) -> None:
    reference = penguins_bundle.reference
    for label, ratio in zip(
        reference.prediction.bin_labels(), reference.prediction.proportions, strict=True
    ):
        assert value(registry, "scoring_prediction_bin_total", bin=label) == 0
        assert value(registry, "scoring_prediction_reference_ratio", bin=label) == ratio
    for feature, distribution in reference.features.items():
        for label, ratio in zip(distribution.bin_labels(), distribution.proportions, strict=True):
            assert value(registry, "scoring_feature_bin_total", feature=feature, bin=label) == 0
            assert (
                value(registry, "scoring_feature_reference_ratio", feature=feature, bin=label)
                == ratio
            )
        assert math.isnan(
            value(registry, "scoring_feature_drift", feature=feature, statistic="psi")
        )
    assert value(registry, "scoring_drift_window_events") == 0
    assert value(registry, "scoring_unknown_category_total", feature="island") == 0


def distinct_id_lines(n: int, unknown: int) -> Iterator[bytes]:
    """Demo events with distinct ids; the first ``unknown`` get a distinct unseen island."""
    for i, line in enumerate(stream_lines(n, seed=9)):
        event = orjson.loads(line)
        event["event_id"] = f"unique-{i}"
        if i < unknown:
            event["island"] = f"Atlantis-{i}"
        yield orjson.dumps(event)


def test_series_do_not_grow_with_event_ids_or_unknown_categories(
    metrics: WorkerMetrics, registry: CollectorRegistry, penguins_bundle: Bundle
) -> None:
    exercise(metrics, penguins_bundle)
    before = series(registry)
    lines = list(distinct_id_lines(10_000, unknown=1_000))
    for start in range(0, len(lines), 1_000):
        batch = score_lines(penguins_bundle, lines[start : start + 1_000])
        metrics.batch_scored("events", 1_000, batch, 0.02)
        metrics.delivered(len(batch.records), list(range(len(batch.records))), 1.7e9)
    assert series(registry) == before
    assert value(registry, "scoring_unknown_category_total", feature="island") == 1_000
    unknown_bin = value(registry, "scoring_feature_bin_total", feature="island", bin="__unknown__")
    assert unknown_bin == 1_000
    text = generate_latest(registry).decode()
    assert "Atlantis" not in text and "unique-" not in text and "k-1" not in text


def test_drift_gauges_and_bin_counters(
    metrics: WorkerMetrics, registry: CollectorRegistry, penguins_bundle: Bundle
) -> None:
    batches = stream_batches(penguins_bundle, 12_000, 1_000, seed=8, drift=["bill_length_mm=+8"])
    for batch in batches:
        metrics.batch_scored("events", 1_000, batch, 0.01)
    report = metrics.drift()
    assert report.events == 10_000  # the default window
    for statistic, expected in zip(("psi", "ks", "js"), report.prediction, strict=True):
        assert value(registry, "scoring_prediction_drift", statistic=statistic) == expected
    for feature, stats in report.features.items():
        assert (
            value(registry, "scoring_feature_drift", feature=feature, statistic="psi") == stats.psi
        )
        ratio = value(registry, "scoring_feature_missing_ratio", feature=feature)
        assert ratio == report.missing_ratio[feature]
    for label, stats in report.class_scores.items():
        assert (
            value(registry, "scoring_class_score_drift", **{"class": label, "statistic": "js"})
            == stats.js
        )
    assert (
        value(registry, "scoring_feature_drift", feature="bill_length_mm", statistic="psi") > 0.25
    )
    # the counters are cumulative (all 12,000 events), not windowed
    predictions = np.concatenate([b.outputs.predictions for b in batches])
    for label, count in Counter(predictions.tolist()).items():
        assert value(registry, "scoring_prediction_bin_total", bin=str(label)) == count


def test_time_window_empties_when_nothing_arrives(
    registry: CollectorRegistry, penguins_bundle: Bundle
) -> None:
    clock = FakeClock()
    settings = DriftSettings(window_events=None, window_s=60.0)
    metrics = WorkerMetrics(registry, penguins_bundle, settings, clock=clock)
    metrics.batch_scored("events", 200, score_lines(penguins_bundle, stream_lines(200)), 0.01)
    assert value(registry, "scoring_drift_window_events") == 200
    clock.now += 61
    assert value(registry, "scoring_drift_window_events") == 0
    assert math.isnan(value(registry, "scoring_prediction_drift", statistic="psi"))
    assert value(registry, "scoring_prediction_bin_total", bin="Adelie") > 0  # counters stay


def test_regression_bundle_bins_predicted_values(
    registry: CollectorRegistry, mass_bundle: Bundle
) -> None:
    metrics = WorkerMetrics(registry, mass_bundle, DriftSettings())
    for batch in stream_batches(mass_bundle, 2_000, 500, seed=3, with_species=True):
        metrics.batch_scored("events", 500, batch, 0.01)
    labels = mass_bundle.reference.prediction.bin_labels()
    assert labels == [str(i) for i in range(len(labels))]
    total = sum(value(registry, "scoring_prediction_bin_total", bin=b) for b in labels)
    assert total == 2_000
    # the value reference is 10 quantile bins of only 69 holdout predictions, itself noisy:
    # an undrifted stream sits around 0.1 here, far below the shifted streams' PSI
    assert metrics.drift().prediction.psi < 0.25
    assert exported(registry)["scoring_class_score_drift"] == ("gauge", set())
    assert value(registry, "scoring_unknown_category_total", feature="species") == 0


def test_scrapes_while_batches_arrive(
    metrics: WorkerMetrics, registry: CollectorRegistry, penguins_bundle: Bundle
) -> None:
    """The loop's thread writes while the HTTP server's thread collects."""
    batches = stream_batches(penguins_bundle, 4_000, 200, seed=12)
    failures: list[BaseException] = []
    done = threading.Event()

    def scrape() -> None:
        try:
            while not done.is_set():
                generate_latest(registry)
        except BaseException as error:  # reported by the assertion below
            failures.append(error)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for _ in range(5):
            for batch in batches:
                metrics.batch_scored("events", 200, batch, 0.01)
    finally:
        done.set()
        scraper.join()
    assert failures == []
    assert value(registry, "scoring_drift_window_events") == 10_000
    total = sum(
        value(registry, "scoring_prediction_bin_total", bin=label)
        for label in penguins_bundle.reference.prediction.bin_labels()
    )
    assert total == 20_000
