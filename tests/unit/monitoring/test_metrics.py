"""WorkerMetrics: the SPEC.md names and labels, the operational counters and histograms."""

from __future__ import annotations

from collections import Counter

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

from examples.stream import generate_labelled_events
from model_bundles.bundle import Bundle
from tests.support.promtext import exercise, exported, value
from tests.support.scored import score_lines, stream_lines
from worker.monitoring.drift import DriftSettings
from worker.monitoring.metrics import METRIC_NAMES, WorkerMetrics

SPEC_METRICS: dict[str, tuple[str, set[str]]] = {
    "scoring_events_consumed_total": ("counter", {"topic"}),
    "scoring_predictions_produced_total": ("counter", set()),
    "scoring_events_rejected_total": ("counter", {"reason"}),
    "scoring_batch_size": ("histogram", set()),
    "scoring_batch_duration_seconds": ("histogram", set()),
    "scoring_event_latency_seconds": ("histogram", set()),
    "scoring_consumer_lag": ("gauge", {"topic", "partition"}),
    "scoring_bundle_info": ("gauge", {"name", "version", "digest"}),
    "scoring_bundle_selfcheck_ok": ("gauge", set()),
    "scoring_prediction_drift": ("gauge", {"statistic"}),
    "scoring_feature_drift": ("gauge", {"feature", "statistic"}),
    "scoring_feature_missing_ratio": ("gauge", {"feature"}),
    "scoring_unknown_category_total": ("counter", {"feature"}),
    "scoring_prediction_bin_total": ("counter", {"bin"}),
    "scoring_parity_checked_total": ("counter", set()),
    "scoring_parity_mismatch_total": ("counter", set()),
    "scoring_transactions_rolled_back_total": ("counter", {"reason"}),
    "scoring_seconds_since_last_commit": ("gauge", set()),
    "scoring_feature_reference_missing_ratio": ("gauge", {"feature"}),
}
#: Beyond SPEC, used by deploy/prometheus rules and the dashboard.
EXTRA_METRICS: dict[str, tuple[str, set[str]]] = {
    "scoring_prediction_reference_ratio": ("gauge", {"bin"}),
    "scoring_feature_bin_total": ("counter", {"feature", "bin"}),
    "scoring_feature_reference_ratio": ("gauge", {"feature", "bin"}),
    "scoring_class_score_drift": ("gauge", {"class", "statistic"}),
    "scoring_drift_window_events": ("gauge", set()),
    "scoring_drift_psi_threshold": ("gauge", {"severity"}),
    "scoring_ready": ("gauge", set()),
    "scoring_partition_blocked": ("gauge", {"topic", "partition", "reason"}),
    "scoring_hanging_transaction": ("gauge", {"topic", "partition"}),
    "scoring_batch_in_progress_seconds": ("gauge", set()),
    "scoring_delivery_duration_seconds": ("histogram", set()),
}


def test_every_spec_metric_is_exported_with_its_labels(
    metrics: WorkerMetrics, registry: CollectorRegistry, penguins_bundle: Bundle
) -> None:
    exercise(metrics, penguins_bundle)
    families = exported(registry)
    for name, spec in {**SPEC_METRICS, **EXTRA_METRICS}.items():
        assert families.get(name) == spec, name
    assert set(families) == METRIC_NAMES == set(SPEC_METRICS) | set(EXTRA_METRICS)


def test_metrics_use_the_injected_registry_only(penguins_bundle: Bundle) -> None:
    WorkerMetrics(CollectorRegistry(), penguins_bundle, DriftSettings())
    WorkerMetrics(CollectorRegistry(), penguins_bundle, DriftSettings())  # no clash
    assert prometheus_client.REGISTRY.get_sample_value("scoring_ready") is None


def test_bundle_info_selfcheck_thresholds_and_readiness(
    registry: CollectorRegistry, penguins_bundle: Bundle
) -> None:
    metrics = WorkerMetrics(
        registry, penguins_bundle, DriftSettings(psi_warning=0.2, psi_critical=0.4)
    )
    manifest = penguins_bundle.manifest
    info = {"name": manifest.name, "version": manifest.version, "digest": manifest.digest}
    assert value(registry, "scoring_bundle_info", **info) == 1
    assert value(registry, "scoring_bundle_selfcheck_ok") == 1
    assert value(registry, "scoring_drift_psi_threshold", severity="warning") == 0.2
    assert value(registry, "scoring_drift_psi_threshold", severity="critical") == 0.4
    assert value(registry, "scoring_ready") == 0 and not metrics.is_ready()
    metrics.set_ready(True)
    assert value(registry, "scoring_ready") == 1 and metrics.is_ready()
    metrics.parity_checked(10, 2)
    metrics.parity_checked(5, 0)
    assert value(registry, "scoring_parity_checked_total") == 15
    assert value(registry, "scoring_parity_mismatch_total") == 2


def test_rejects_are_counted_by_reason(
    metrics: WorkerMetrics, registry: CollectorRegistry, penguins_bundle: Bundle
) -> None:
    labelled = list(generate_labelled_events(1_500, seed=4, poison_rate=0.1, allow_large=True))
    expected = Counter(reason for _, reason in labelled if reason is not None)
    assert len(expected) == 6  # every reason of SPEC.md occurs
    for start in range(0, len(labelled), 500):
        chunk = [line for line, _ in labelled[start : start + 500]]
        metrics.events_read("events", len(chunk))
        metrics.batch_scored("events", len(chunk), score_lines(penguins_bundle, chunk), 0.01)
    for reason, count in expected.items():
        assert value(registry, "scoring_events_rejected_total", reason=reason) == count
    assert value(registry, "scoring_events_consumed_total", topic="events") == 1_500
    valid = 1_500 - sum(expected.values())
    assert (
        sum(
            value(registry, "scoring_prediction_bin_total", bin=label)
            for label in penguins_bundle.reference.prediction.bin_labels()
        )
        == valid
    )


def test_batch_histograms(
    metrics: WorkerMetrics, registry: CollectorRegistry, penguins_bundle: Bundle
) -> None:
    lines = stream_lines(703, seed=1)
    metrics.batch_scored("events", 3, score_lines(penguins_bundle, lines[:3]), 0.0007)
    metrics.batch_scored("events", 700, score_lines(penguins_bundle, lines[3:]), 0.2)
    assert value(registry, "scoring_batch_size_bucket", le="5.0") == 1
    assert value(registry, "scoring_batch_size_bucket", le="1000.0") == 2
    assert value(registry, "scoring_batch_size_count") == 2
    assert value(registry, "scoring_batch_size_sum") == 703
    assert value(registry, "scoring_batch_duration_seconds_bucket", le="0.001") == 1
    assert value(registry, "scoring_batch_duration_seconds_bucket", le="0.25") == 2
    assert value(registry, "scoring_batch_duration_seconds_sum") == pytest.approx(0.2007)


def test_event_latency_histogram(metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
    now_s = 2_000.0
    # 1 ms, 0.5 s, 1 s (on a bucket bound: le is inclusive), 90 s, no timestamp, from the future
    stamps: list[int | None] = [1_999_999, 1_999_500, 1_999_000, 1_910_000, None, 2_000_100]
    metrics.delivered(6, stamps, now_s)
    assert value(registry, "scoring_predictions_produced_total") == 6
    bucket = "scoring_event_latency_seconds_bucket"
    assert value(registry, bucket, le="0.001") == 2  # 1 ms and the clamped future one
    assert value(registry, bucket, le="0.5") == 3
    assert value(registry, bucket, le="1.0") == 4
    assert value(registry, bucket, le="60.0") == 4
    assert value(registry, bucket, le="120.0") == 5
    assert value(registry, bucket, le="+Inf") == 5
    assert value(registry, "scoring_event_latency_seconds_count") == 5
    assert value(registry, "scoring_event_latency_seconds_sum") == pytest.approx(91.501)
    metrics.delivered(3, [1_999_000, 1_999_000, 1_999_000], now_s)
    assert value(registry, bucket, le="1.0") == 7


def test_delivery_duration_histogram(metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
    metrics.delivered(4, [1_999_000] * 4, 2_000.0, delivery_s=0.004)
    metrics.delivered(4, [1_999_000] * 4, 2_000.0, delivery_s=0.12)
    metrics.delivered(4, [1_999_000] * 4, 2_000.0)  # no delivery time given: not observed
    bucket = "scoring_delivery_duration_seconds_bucket"
    assert value(registry, bucket, le="0.005") == 1
    assert value(registry, bucket, le="0.1") == 1
    assert value(registry, bucket, le="0.25") == 2
    assert value(registry, "scoring_delivery_duration_seconds_count") == 2
    assert value(registry, "scoring_delivery_duration_seconds_sum") == pytest.approx(0.124)


def test_lag_per_partition_and_forgetting_one(
    metrics: WorkerMetrics, registry: CollectorRegistry
) -> None:
    metrics.set_lag("events", 0, 5)
    metrics.set_lag("events", 1, 7)
    metrics.set_lag("events", 0, 3)
    assert value(registry, "scoring_consumer_lag", topic="events", partition="0") == 3
    metrics.forget_partition("events", 1)
    metrics.forget_partition("events", 9)  # never assigned: nothing to do
    assert (
        registry.get_sample_value("scoring_consumer_lag", {"topic": "events", "partition": "1"})
        is None
    )
    assert value(registry, "scoring_consumer_lag", topic="events", partition="0") == 3
