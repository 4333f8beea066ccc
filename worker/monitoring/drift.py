"""Research-vs-live drift: a sliding window of bin counts and the statistics over it.

Pure numpy, no I/O, no Prometheus: ``worker.monitoring.metrics`` feeds it and exports it.

Bins are the research reference's (``model_bundles.reference``): quantile bins
for numeric values, categories plus ``__unknown__`` for categorical ones, class
labels for a classifier's predictions. A batch is reduced to one small vector
of counts per bin (``worker.monitoring.drift_bins``); the window is a ring of such vectors
with running totals, so adding a batch costs O(bins), never O(events).

Statistics, for live proportions ``p`` (window counts / non-missing events in
the window) against reference proportions ``r``, bins in reference order:

- PSI = sum((p' - r') * ln(p' / r')) with p' = max(p, eps), r' = max(r, eps),
  eps = 1e-4 (so an empty bin on either side gives a large but finite term);
- KS = max |cumsum(p) - cumsum(r)| (unclamped proportions; for categorical
  bins the order is the bundle's category order, unknown last);
- JS = Jensen-Shannon distance, base 2, on the unclamped proportions, as
  ``scipy.spatial.distance.jensenshannon(p, r, base=2)``: in [0, 1], computed in a
  form that keeps nearly identical distributions exact (see ``js_distance``).

With no live (non-missing) value in the window, or no reference data (a feature with
no value in training), every statistic is NaN: no data is not no drift.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

EPSILON = 1e-4
_LN2 = math.log(2.0)
STATISTICS: tuple[str, ...] = ("psi", "ks", "js")

Counts = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


class DriftSettings(BaseModel):
    """How drift is measured. At least one of ``window_events`` / ``window_s`` is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_events: int | None = Field(default=10_000, gt=0)
    """Drift is computed over (at least) the most recent this many scored events."""
    window_s: float | None = Field(default=None, gt=0)
    """Drift is computed over the events scored in the last this many seconds."""
    window_slots: int = Field(default=64, ge=1, le=4096)
    """The window is kept as at most about twice this many count vectors; events leave
    it one slot at a time, so its size is exact to within 1/window_slots of the window
    (or one batch, when a batch is larger than that)."""
    psi_warning: float = Field(default=0.1, gt=0)
    """PSI above which drift deserves a look (exported for the alert rules)."""
    psi_critical: float = Field(default=0.25, gt=0)
    """PSI above which drift is significant (exported for the alert rules)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.window_events is None and self.window_s is None:
            raise ValueError("set window_events, window_s or both")
        if self.psi_warning > self.psi_critical:
            raise ValueError("psi_warning must not exceed psi_critical")
        return self


class DriftStats(NamedTuple):
    psi: float
    ks: float
    js: float


NO_DATA = DriftStats(float("nan"), float("nan"), float("nan"))


def psi(live: Floats, reference: Floats, eps: float = EPSILON) -> float:
    """Population stability index of two proportion vectors, both clamped below at eps."""
    p = np.maximum(live, eps)
    r = np.maximum(reference, eps)
    return float(np.sum((p - r) * np.log(p / r)))


def ks(live: Floats, reference: Floats) -> float:
    """Largest gap between the two cumulative distributions over the ordered bins."""
    return float(np.max(np.abs(np.cumsum(live) - np.cumsum(reference)), initial=0.0))


def js_distance(live: Floats, reference: Floats) -> float:
    """Jensen-Shannon distance, base 2 (scipy's ``jensenshannon(p, q, base=2)``), in [0, 1].

    Computed per bin from x = (p - q) / (p + q) as
    JSD = sum((p + q) / 4 * f(x)) with f(x) = 2x atanh(x) + ln(1 - x^2), both terms of
    order x^2: no cancellation across bins, so nearly identical distributions give the
    small positive distance they have (``p ln(p/m) + q ln(q/m)`` summed over bins loses
    it to rounding, and can go negative under the square root). A bin present on one
    side only (|x| = 1) has f = 2 ln 2.
    """
    p = live / np.sum(live)
    q = reference / np.sum(reference)
    s = p + q
    keep = s > 0
    p, q, s = p[keep], q[keep], s[keep]
    x = (p - q) / s
    f = np.full_like(x, 2.0 * _LN2)
    both = np.abs(x) < 1.0
    inner = x[both]
    f[both] = 2.0 * inner * np.arctanh(inner) + np.log1p(-inner * inner)
    divergence = float(np.sum(s * f)) / 4.0 / _LN2
    return math.sqrt(min(max(divergence, 0.0), 1.0))  # rounding stays inside [0, 1]


def drift_stats(counts: Counts, reference: Floats) -> DriftStats:
    """PSI, KS and JS of live bin counts against reference proportions.

    NaN (all three) when there is nothing to compare: no live value in ``counts``, or
    no reference data (proportions all 0: a feature with no value in training).
    """
    total = int(counts.sum())
    if total == 0 or not np.any(reference > 0):
        return NO_DATA
    live = counts / total
    return DriftStats(psi(live, reference), ks(live, reference), js_distance(live, reference))


@dataclass(slots=True)
class _Slot:
    counts: Counts
    events: int
    start_s: float
    end_s: float


class SlidingWindow:
    """Running per-bin totals over the recent batches; not thread-safe (callers lock).

    Batches are merged into the newest slot while it stays small (under
    ``window_events / window_slots`` events and ``window_s / window_slots``
    seconds); the oldest slot leaves once the rest still hold ``window_events``
    events, or once its newest batch is older than ``window_s``.
    """

    def __init__(self, width: int, settings: DriftSettings) -> None:
        self.width = width
        self._window_events = settings.window_events
        self._window_s = settings.window_s
        slots = settings.window_slots
        self._slot_events = (
            max(1, settings.window_events // slots) if settings.window_events else None
        )
        self._slot_s = settings.window_s / slots if settings.window_s else None
        self._slots: deque[_Slot] = deque()
        self._totals: Counts = np.zeros(width, dtype=np.int64)
        self._events = 0

    @property
    def events(self) -> int:
        return self._events

    @property
    def slots(self) -> int:
        return len(self._slots)

    def push(self, counts: Counts, events: int, now_s: float) -> None:
        """Add one batch's counts (taken over: the caller must not reuse the array)."""
        if events > 0:
            newest = self._slots[-1] if self._slots else None
            if newest is not None and self._fits(newest, events, now_s):
                newest.counts += counts
                newest.events += events
                newest.end_s = now_s
            else:
                self._slots.append(_Slot(counts, events, now_s, now_s))
            self._totals += counts
            self._events += events
        self.expire(now_s)

    def _fits(self, slot: _Slot, events: int, now_s: float) -> bool:
        if self._slot_events is not None and slot.events + events > self._slot_events:
            return False
        return self._slot_s is None or now_s - slot.start_s < self._slot_s

    def expire(self, now_s: float) -> None:
        """Drop the slots that have left the window."""
        while self._slots:
            oldest = self._slots[0]
            by_count = (
                self._window_events is not None
                and self._events - oldest.events >= self._window_events
            )
            by_time = self._window_s is not None and oldest.end_s <= now_s - self._window_s
            if not (by_count or by_time):
                return
            self._slots.popleft()
            self._totals -= oldest.counts
            self._events -= oldest.events

    def totals(self, now_s: float) -> tuple[Counts, int]:
        """A copy of the window's per-bin totals and its number of events."""
        self.expire(now_s)
        return self._totals.copy(), self._events
