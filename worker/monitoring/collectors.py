"""Prometheus collectors backed by numpy state, read at scrape time.

Two families are fed in bulk, once per batch, rather than one call per event
or per label: the drift window (per-bin counts, turned into PSI/KS/JS when
scraped) and the event-latency histogram (a whole batch of latencies bucketed
by one ``np.searchsorted``). Both take a lock around their state: the run loop
writes from its thread while the HTTP server's thread scrapes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import cast

import numpy as np
from prometheus_client import utils
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from worker.monitoring.drift import (
    STATISTICS,
    Counts,
    DriftSettings,
    DriftStats,
    Floats,
    SlidingWindow,
)
from worker.monitoring.drift_bins import DriftLayout, DriftReport, Segment, drift_report


class DriftCollector(Collector):
    """The drift window, the cumulative bin counters and the drift gauges over them."""

    def __init__(
        self, layout: DriftLayout, settings: DriftSettings, clock: Callable[[], float]
    ) -> None:
        self.layout = layout
        self._clock = clock
        self._lock = threading.Lock()
        self._window = SlidingWindow(layout.width, settings)
        self._cumulative: Counts = np.zeros(layout.width, dtype=np.int64)

    def add(self, counts: Counts, events: int) -> None:
        """Add one batch's count vector (``DriftLayout.count``)."""
        now = self._clock()
        with self._lock:
            self._cumulative += counts
            self._window.push(counts, events, now)

    def snapshot(self) -> tuple[DriftReport, Counts]:
        """Drift of the current window, and the cumulative counts since start."""
        now = self._clock()
        with self._lock:
            totals, events = self._window.totals(now)
            cumulative = self._cumulative.copy()
        return drift_report(self.layout, totals, events), cumulative

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        report, cumulative = self.snapshot()
        return self._families(report, cumulative)

    def _families(
        self, report: DriftReport | None = None, cumulative: Counts | None = None
    ) -> list[Metric]:
        stat = ["statistic"]
        prediction = GaugeMetricFamily(
            "scoring_prediction_drift", "Live prediction window vs research reference", labels=stat
        )
        features = GaugeMetricFamily(
            "scoring_feature_drift",
            "Live feature window vs training reference",
            labels=["feature", *stat],
        )
        classes = GaugeMetricFamily(
            "scoring_class_score_drift",
            "Live class probability window vs research reference",
            labels=["class", *stat],
        )
        missing = GaugeMetricFamily(
            "scoring_feature_missing_ratio",
            "Share of scored events in the drift window missing the feature",
            labels=["feature"],
        )
        window = GaugeMetricFamily(
            "scoring_drift_window_events", "Scored events in the drift window"
        )
        prediction_bins = CounterMetricFamily(
            "scoring_prediction_bin_total", "Predictions per reference bin", labels=["bin"]
        )
        feature_bins = CounterMetricFamily(
            "scoring_feature_bin_total",
            "Non-missing feature values per reference bin",
            labels=["feature", "bin"],
        )
        if report is not None and cumulative is not None:
            _add_stats(prediction, [], report.prediction)
            for name, stats in report.features.items():
                _add_stats(features, [name], stats)
            for name, stats in report.class_scores.items():
                _add_stats(classes, [name], stats)
            for name, ratio in report.missing_ratio.items():
                missing.add_metric([name], ratio)
            window.add_metric([], report.events)
            _add_bins(prediction_bins, [], self.layout.prediction, cumulative)
            for segment in self.layout.features:
                _add_bins(feature_bins, [segment.name], segment, cumulative)
        return [prediction, features, classes, missing, window, prediction_bins, feature_bins]


def _add_stats(family: GaugeMetricFamily, labels: list[str], stats: DriftStats) -> None:
    for statistic, value in zip(STATISTICS, stats, strict=True):
        family.add_metric([*labels, statistic], value)


def _add_bins(
    family: CounterMetricFamily, labels: list[str], segment: Segment, counts: Counts
) -> None:
    for label, value in zip(segment.labels, segment.bins(counts).tolist(), strict=True):
        family.add_metric([*labels, label], value)


# the client's own formatting of an ``le`` bound (untyped in prometheus_client)
_go_float = cast(Callable[[float], str], utils.floatToGoString)


class BulkHistogram(Collector):
    """A label-less histogram observed a batch at a time (Prometheus ``le`` buckets)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds: Floats = np.asarray(sorted(buckets), dtype=np.float64)
        self._counts: Counts = np.zeros(len(self._bounds) + 1, dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: Floats) -> None:
        if not len(values):
            return
        # bucket i counts bounds[i-1] < v <= bounds[i]; the last one is +Inf
        index = np.searchsorted(self._bounds, values, side="left")
        counts = np.bincount(index, minlength=len(self._counts))
        total = float(values.sum())
        with self._lock:
            self._counts += counts
            self._sum += total

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        bounds = [_go_float(b) for b in self._bounds.tolist()]
        buckets = list(zip([*bounds, "+Inf"], cumulative, strict=True))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, total)
        yield family
