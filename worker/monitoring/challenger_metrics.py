"""Challenger metrics (SPEC.md "Champion and challenger"), on the worker's registry.

- ``scoring_challenger_agreement_ratio{challenger}``: share of events, over the drift
  window, where the challenger's prediction equals the champion's: the same label, or
  for regression the same value after rounding both to ``REGRESSION_DECIMALS`` decimals
  (bundles declare no precision of their own yet);
- ``scoring_challenger_prediction_drift{challenger,statistic}``: PSI, KS and JS of the
  challenger's predictions against the champion's over the same window and events,
  binned by the champion's research reference bins (``worker.monitoring.drift``);
- ``scoring_challenger_batch_duration_seconds{challenger}``: scoring time per batch;
- ``scoring_challenger_predictions_produced_total{challenger}`` and
  ``scoring_challenger_rejected_total{challenger,reason}``: records delivered, and
  champion-valid events the challenger refused (no dead letter is sent for them;
  ``reason="model_error"`` when its pipeline raised on the event);
- ``scoring_challenger_disabled{challenger}``: 1 once the challenger's circuit opened
  and it scores nothing more in this run (``worker.live.challengers``), else 0.

Each challenger has one ``SlidingWindow`` whose count vector is the champion's bins,
the challenger's bins, then the number of agreeing events: adding a batch costs
O(bins), and agreement and drift always cover the same events.
"""

from __future__ import annotations

import time
from collections import Counter as Counts
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from model_bundles.bundle import Bundle
from model_bundles.predict import Outputs
from worker.monitoring.drift import DriftSettings, SlidingWindow, drift_stats
from worker.monitoring.drift_bins import DriftLayout
from worker.monitoring.metrics import BATCH_DURATION_BUCKETS

REGRESSION_DECIMALS = 6
CHALLENGER_METRIC_NAMES: frozenset[str] = frozenset(
    {
        "scoring_challenger_agreement_ratio",  # SPEC.md
        "scoring_challenger_prediction_drift",  # SPEC.md
        "scoring_challenger_batch_duration_seconds",  # SPEC.md
        "scoring_challenger_predictions_produced_total",
        "scoring_challenger_rejected_total",
        "scoring_challenger_disabled",
    }
)


class ChallengerMetrics:
    """``worker.live.challengers.ChallengerObserver`` over Prometheus metrics."""

    def __init__(
        self,
        registry: CollectorRegistry,
        champion: Bundle,
        names: Sequence[str],
        settings: DriftSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        manifest = champion.manifest
        self.binner = DriftLayout(champion.reference, [], manifest.classes).prediction.binner
        self.width = self.binner.bins + 1  # bins, then missing
        self.regression = manifest.classes is None
        self.clock = clock
        window = settings or DriftSettings()
        self.windows = {n: SlidingWindow(2 * self.width + 1, window) for n in names}
        self._register(registry)
        for name in names:
            self.produced.labels(name)
            self.disabled.labels(name).set(0)

    def _register(self, r: CollectorRegistry) -> None:
        self.agreement = Gauge(
            "scoring_challenger_agreement_ratio",
            "Share of events where the challenger predicts what the champion does (window)",
            ["challenger"],
            registry=r,
        )
        self.drift = Gauge(
            "scoring_challenger_prediction_drift",
            "Challenger predictions against the champion's over the window",
            ["challenger", "statistic"],
            registry=r,
        )
        self.duration = Histogram(
            "scoring_challenger_batch_duration_seconds",
            "Challenger scoring time per batch",
            ["challenger"],
            buckets=BATCH_DURATION_BUCKETS,
            registry=r,
        )
        self.produced = Counter(
            "scoring_challenger_predictions_produced_total",
            "Challenger records delivered",
            ["challenger"],
            registry=r,
        )
        self.rejected = Counter(
            "scoring_challenger_rejected_total",
            "Champion-valid events the challenger rejected (not dead-lettered)",
            ["challenger", "reason"],
            registry=r,
        )
        self.disabled = Gauge(
            "scoring_challenger_disabled",
            "1 once the challenger's circuit opened: it scores nothing more in this run",
            ["challenger"],
            registry=r,
        )

    def challenger_disabled(self, name: str) -> None:
        """The challenger's circuit opened (``worker.live.challengers``)."""
        self.disabled.labels(name).set(1)

    def challenger_batch(
        self,
        name: str,
        champion: npt.NDArray[Any],
        challenger: Outputs,
        rejected: Counts[str],
        duration_s: float,
    ) -> None:
        """One delivered batch of one challenger (see the module docstring)."""
        self.duration.labels(name).observe(duration_s)
        self.produced.labels(name).inc(len(challenger))
        for reason, count in rejected.items():
            self.rejected.labels(name, reason).inc(count)
        window = self.windows[name]
        if len(challenger):
            ours, theirs = champion, challenger.predictions
            counts = np.concatenate(
                [self.binner.count(ours), self.binner.count(theirs), [self._agreed(ours, theirs)]]
            ).astype(np.int64)
            window.push(counts, len(challenger), self.clock())
        totals, events = window.totals(self.clock())
        w = self.width
        self.agreement.labels(name).set(int(totals[-1]) / events if events else float("nan"))
        champion_bins, challenger_bins = totals[: w - 1], totals[w : 2 * w - 1]
        reference = champion_bins / max(int(champion_bins.sum()), 1)
        stats = drift_stats(challenger_bins, reference)
        for statistic, value in stats._asdict().items():
            self.drift.labels(name, statistic).set(value)

    def _agreed(self, ours: npt.NDArray[Any], theirs: npt.NDArray[Any]) -> int:
        if self.regression:
            a = np.round(np.asarray(ours, dtype=np.float64), REGRESSION_DECIMALS)
            b = np.round(np.asarray(theirs, dtype=np.float64), REGRESSION_DECIMALS)
            return int(np.sum(a == b))
        return int(np.sum(np.asarray(ours).astype(str) == np.asarray(theirs).astype(str)))
