"""The worker's Prometheus metrics (SPEC.md "Metrics and health"), on an injected registry.

``WorkerMetrics`` is the observer the run loop and replay call: once per poll
(events read), once per batch, once per delivery or rollback, on lag updates and
readiness changes. A worker that reads but cannot deliver shows it: events read and
lag keep moving, rolled-back transactions count up by reason, and the seconds since
the last commit grow. Every call costs a
fixed number of counter/histogram updates plus a few vectorised numpy calls,
never a Python step per event. Label values come from the bundle (features,
bins, classes), from a closed enum (reject reasons) or from the consumer's
assignment (topic, partition): never from an event's content, so the number of
series does not grow with the stream.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from model_bundles.bundle import Bundle
from schemas.wire_names import RejectReason
from worker.core.scoring import ScoredBatch
from worker.monitoring.collectors import BulkHistogram, DriftCollector
from worker.monitoring.drift import DriftSettings
from worker.monitoring.drift_bins import CategoricalBinner, DriftLayout, DriftReport
from worker.monitoring.faults import FAULT_METRIC_NAMES, FaultMetrics

#: Every metric family the worker exports (as named in the text exposition).
METRIC_NAMES: frozenset[str] = frozenset(
    {
        # SPEC.md, public API
        "scoring_events_consumed_total",
        "scoring_predictions_produced_total",
        "scoring_events_rejected_total",
        "scoring_batch_size",
        "scoring_batch_duration_seconds",
        "scoring_event_latency_seconds",
        "scoring_consumer_lag",
        "scoring_bundle_info",
        "scoring_bundle_selfcheck_ok",
        "scoring_prediction_drift",
        "scoring_feature_drift",
        "scoring_feature_missing_ratio",
        "scoring_unknown_category_total",
        "scoring_prediction_bin_total",
        "scoring_parity_checked_total",
        "scoring_parity_mismatch_total",
        "scoring_transactions_rolled_back_total",
        "scoring_seconds_since_last_commit",
        "scoring_feature_reference_missing_ratio",
        # for the recording/alert rules and dashboards
        "scoring_delivery_duration_seconds",
        "scoring_prediction_reference_ratio",
        "scoring_feature_bin_total",
        "scoring_feature_reference_ratio",
        "scoring_class_score_drift",
        "scoring_drift_window_events",
        "scoring_drift_psi_threshold",
        "scoring_ready",
    }
    | FAULT_METRIC_NAMES
)

BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 50_000)
BATCH_DURATION_BUCKETS = (
    *(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
    *(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
LATENCY_BUCKETS = (
    *(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    *(1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)


class WorkerMetrics:
    """All worker metrics for one loaded bundle, registered on ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        bundle: Bundle,
        settings: DriftSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.settings = settings or DriftSettings()
        self._ready = False
        self._clock = clock
        self._last_commit_s = clock()
        manifest = bundle.manifest
        self.layout = DriftLayout(bundle.reference, manifest.features, manifest.classes)
        self._drift = DriftCollector(self.layout, self.settings, clock)
        registry.register(self._drift)
        self._latency = BulkHistogram(
            "scoring_event_latency_seconds",
            "Event timestamp to prediction delivered",
            LATENCY_BUCKETS,
        )
        registry.register(self._latency)
        self._operational(registry)
        self._static(registry, bundle)
        self.faults = FaultMetrics(registry)
        self.set_partition_blocked = self.faults.set_partition_blocked
        self.set_hanging = self.faults.set_hanging
        self.set_batch_in_progress = self.faults.set_batch_in_progress

    def _operational(self, registry: CollectorRegistry) -> None:
        r = registry
        self._consumed = Counter(
            "scoring_events_consumed_total",
            "Events read (once each, delivered or not)",
            ["topic"],
            registry=r,
        )
        self._consumed_by_topic: dict[str, Counter] = {}
        self._produced = Counter(
            "scoring_predictions_produced_total", "Predictions delivered", registry=r
        )
        rejected = Counter(
            "scoring_events_rejected_total", "Events sent to the DLQ", ["reason"], registry=r
        )
        self._rejected_family = rejected
        self._rejected = {str(reason): rejected.labels(str(reason)) for reason in RejectReason}
        self._batch_size = Histogram(
            "scoring_batch_size", "Events per scored batch", buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self._batch_duration = Histogram(
            "scoring_batch_duration_seconds",
            "Decode+score+encode time per batch",
            buckets=BATCH_DURATION_BUCKETS,
            registry=r,
        )
        self._delivery_duration = Histogram(
            "scoring_delivery_duration_seconds",
            "Time to deliver a scored batch: produce and commit (a transaction, exactly-once)",
            buckets=BATCH_DURATION_BUCKETS,
            registry=r,
        )
        self._lag = Gauge(
            "scoring_consumer_lag", "End offset minus position", ["topic", "partition"], registry=r
        )
        self._lag_children: dict[tuple[str, int], Gauge] = {}
        unknown = Counter(
            "scoring_unknown_category_total",
            "Categories never seen in training",
            ["feature"],
            registry=r,
        )
        self._unknown = {
            s.name: unknown.labels(s.name)
            for s in self.layout.features
            if isinstance(s.binner, CategoricalBinner)
        }
        self._parity_checked = Counter(
            "scoring_parity_checked_total", "Research-vs-live comparisons", registry=r
        )
        self._parity_mismatch = Counter(
            "scoring_parity_mismatch_total", "Research-vs-live mismatches", registry=r
        )
        self._ready_gauge = Gauge("scoring_ready", "1 when the worker is ready", registry=r)
        self._rolled_back = Counter(
            "scoring_transactions_rolled_back_total",
            "Batches rolled back (or, at-least-once, not delivered), by Kafka error",
            ["reason"],
            registry=r,
        )
        since_commit = Gauge(
            "scoring_seconds_since_last_commit",
            "Seconds since offsets were last committed (since start before the first commit)",
            registry=r,
        )
        since_commit.set_function(lambda: max(self._clock() - self._last_commit_s, 0.0))

    def _static(self, registry: CollectorRegistry, bundle: Bundle) -> None:
        r = registry
        manifest = bundle.manifest
        info = Gauge(
            "scoring_bundle_info",
            "1 for the loaded bundle",
            ["name", "version", "digest"],
            registry=r,
        )
        info.labels(manifest.name, manifest.version, manifest.digest).set(1)
        selfcheck = Gauge(
            "scoring_bundle_selfcheck_ok", "1 when golden outputs matched at load", registry=r
        )
        selfcheck.set(1 if bundle.selfcheck.ok else 0)
        thresholds = Gauge(
            "scoring_drift_psi_threshold", "PSI alert thresholds", ["severity"], registry=r
        )
        thresholds.labels("warning").set(self.settings.psi_warning)
        thresholds.labels("critical").set(self.settings.psi_critical)
        prediction_ref = Gauge(
            "scoring_prediction_reference_ratio",
            "Research share of predictions per bin",
            ["bin"],
            registry=r,
        )
        segment = self.layout.prediction
        for label, ratio in zip(segment.labels, segment.reference.tolist(), strict=True):
            prediction_ref.labels(label).set(ratio)
        feature_ref = Gauge(
            "scoring_feature_reference_ratio",
            "Training share of non-missing feature values per bin",
            ["feature", "bin"],
            registry=r,
        )
        for segment in self.layout.features:
            for label, ratio in zip(segment.labels, segment.reference.tolist(), strict=True):
                feature_ref.labels(segment.name, label).set(ratio)
        reference_missing = Gauge(
            "scoring_feature_reference_missing_ratio",
            "Share of training rows missing the feature (1: no training value)",
            ["feature"],
            registry=r,
        )
        for name, distribution in bundle.reference.features.items():
            reference_missing.labels(name).set(distribution.missing_rate)

    # --- the observer interface of the run loop and replay ---

    def events_read(self, topic: str, count: int) -> None:
        """``count`` events read from ``topic`` for the first time (0 creates the series)."""
        child = self._consumed_by_topic.get(topic)
        if child is None:
            child = self._consumed_by_topic[topic] = self._consumed.labels(topic)
        child.inc(count)

    def batch_scored(
        self, topic: str, consumed: int, batch: ScoredBatch, duration_s: float
    ) -> None:
        """One delivered micro-batch: rejects, sizes, unknown categories and drift (the
        events were counted as read by ``events_read``)."""
        if batch.rejected:
            reasons = collections.Counter(str(r.rejection.reason) for r in batch.rejected)
            for reason, count in reasons.items():
                child = self._rejected.get(reason)
                if child is None:  # a reason added to the code after start-up
                    child = self._rejected[reason] = self._rejected_family.labels(reason)
                child.inc(count)
        self._batch_size.observe(consumed)
        self._batch_duration.observe(duration_s)
        for feature, count in batch.unknown_categories.items():
            unknown = self._unknown.get(feature)
            if unknown is not None:
                unknown.inc(count)
        rows = len(batch.frame)
        if rows:
            outputs = batch.outputs
            counts = self.layout.count(batch.frame, outputs.predictions, outputs.scores)
            self._drift.add(counts, rows)

    def delivered(
        self,
        count: int,
        event_timestamps_ms: list[int | None],
        now_s: float,
        delivery_s: float | None = None,
    ) -> None:
        """Predictions delivered; latency from each event's timestamp (epoch ms) to ``now_s``;
        ``delivery_s``: how long the batch's delivery took (seconds; exactly-once: begin,
        produce, send the offsets, commit)."""
        self._produced.inc(count)
        if delivery_s is not None:
            self._delivery_duration.observe(delivery_s)
        if not event_timestamps_ms:
            return
        try:
            stamps = np.array(event_timestamps_ms, dtype=np.int64).astype(np.float64)
        except TypeError:  # some None: those events have no timestamp
            stamps = np.array(event_timestamps_ms, dtype=np.float64)
            stamps = stamps[~np.isnan(stamps)]
        # clocks disagree a little across hosts: an event from "the future" took no time
        self._latency.observe_many(np.maximum(now_s - stamps / 1000.0, 0.0))

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        child = self._lag_children.get((topic, partition))
        if child is None:
            child = self._lag_children[(topic, partition)] = self._lag.labels(topic, str(partition))
        child.set(lag)

    def forget_partition(self, topic: str, partition: int) -> None:
        """The partition was revoked: its lag is another replica's to report now."""
        if self._lag_children.pop((topic, partition), None) is not None:
            self._lag.remove(topic, str(partition))

    def set_ready(self, ready: bool) -> None:
        self._ready = ready
        self._ready_gauge.set(1 if ready else 0)

    def committed(self) -> None:
        """A batch's offsets were committed: the seconds-since-commit gauge restarts."""
        self._last_commit_s = self._clock()

    def rolled_back(self, reason: str) -> None:
        """A batch was rolled back; ``reason`` is a Kafka error name, a bounded set
        (``MSG_SIZE_TOO_LARGE`` and ``_STUCK`` are exported as ``msg_size_too_large`` and
        ``stuck``; an empty one as ``unknown``)."""
        self._rolled_back.labels(reason.lower().lstrip("_") or "unknown").inc()

    def parity_checked(self, checked: int, mismatched: int) -> None:
        self._parity_checked.inc(checked)
        self._parity_mismatch.inc(mismatched)

    # --- for the HTTP server and summaries ---

    def is_ready(self) -> bool:
        return self._ready

    def drift(self) -> DriftReport:
        """Drift of the current window (what the next scrape would show)."""
        return self._drift.snapshot()[0]
