"""Reduce a scored batch to per-bin counts against the bundle's research reference.

Pure: a frame and model outputs in, one int64 vector out. The vector is the
concatenation of one segment per tracked distribution (the prediction, each
input feature, each class's probability), each segment holding one count per
reference bin followed by the number of missing values. Its cost per batch is
a few vectorised numpy/pandas calls per segment, no Python loop over events:

- numeric: ``np.searchsorted(edges, values, side="left")`` (the reference's own
  ``bin_indices``: bin i is (edges[i-1], edges[i]]), NaN to the missing slot;
- categorical: ``pd.factorize`` then a lookup of the (few) distinct values, training
  categories beyond the reference's cap to ``__other__``, anything not seen in
  training to ``__unknown__``, NaN to the missing slot.

Segment labels are the reference's ``bin_labels()``: distinct within a segment, a
category never taking a reserved label (``model_bundles.reference.bin_label``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.extensions import ExtensionArray

from model_bundles.reference import CategoricalReference, Distribution, Reference
from model_bundles.values import category_text, float_values
from schemas.manifest import FeatureSpec, Label
from worker.monitoring.drift import NO_DATA, Counts, DriftStats, Floats, drift_stats

SegmentKind = Literal["prediction", "feature", "class_score"]
Values = npt.NDArray[Any] | ExtensionArray


class NumericBinner:
    def __init__(self, edges: Sequence[float]) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        self.bins = len(self.edges) + 1

    def count(self, values: Values) -> Counts:
        """Counts per bin, then the number of NaN values (length bins + 1)."""
        v = float_values(values)  # numbers, booleans, datetimes (seconds since the epoch)
        index = np.searchsorted(self.edges, v, side="left")
        index[np.isnan(v)] = self.bins
        return np.bincount(index, minlength=self.bins + 1).astype(np.int64, copy=False)


class CategoricalBinner:
    def __init__(self, categories: Sequence[str], other: Sequence[str] = ()) -> None:
        """Bins: ``categories``, then one bin for all of ``other`` (when there is any),
        then the unknown bin (``CategoricalReference.bin_labels``)."""
        self._index = {c: i for i, c in enumerate(categories)}
        if other:
            self._index.update(dict.fromkeys(other, len(categories)))
        self.unknown = len(categories) + (1 if other else 0)
        self.bins = self.unknown + 1

    def _bin(self, value: Any) -> int:
        found = self._index.get(value)
        if found is None and not isinstance(value, str):
            # e.g. integer class labels: the canonical text the reference was built from
            found = self._index.get(category_text(value))  # type: ignore[arg-type]
        return self.unknown if found is None else found

    def count(self, values: Values) -> Counts:
        """Counts per category, unknown, then the number of missing values."""
        uniques: Iterable[Any]
        if isinstance(values, ExtensionArray):  # e.g. pandas' Arrow-backed ``str`` columns
            codes, uniques = values.factorize(use_na_sentinel=True)
        else:
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
        # one lookup per distinct value; code -1 (missing) picks the last entry
        lookup = np.array([*(self._bin(u) for u in uniques), self.bins], dtype=np.intp)
        return np.bincount(lookup[codes], minlength=self.bins + 1).astype(np.int64, copy=False)


Binner = NumericBinner | CategoricalBinner


@dataclass(frozen=True)
class Segment:
    """One tracked distribution: its bins sit at [start, start + len(labels)),
    its missing count right after them."""

    kind: SegmentKind
    name: str
    labels: tuple[str, ...]
    reference: Floats
    start: int
    binner: Binner

    @property
    def stop(self) -> int:
        return self.start + len(self.labels)

    @property
    def missing_index(self) -> int:
        return self.stop

    def bins(self, counts: Counts) -> Counts:
        return counts[self.start : self.stop]


def _binner(distribution: Distribution) -> Binner:
    if isinstance(distribution, CategoricalReference):
        return CategoricalBinner(distribution.categories, distribution.other or ())
    return NumericBinner(distribution.edges)


class DriftLayout:
    """Where each distribution lives in a batch's count vector, and how to fill it."""

    def __init__(
        self,
        reference: Reference,
        features: Sequence[FeatureSpec],
        classes: Sequence[Label] | None = None,
    ) -> None:
        self.width = 0
        self.prediction = self._add("prediction", "prediction", reference.prediction)
        self.features = [self._add("feature", f.name, reference.features[f.name]) for f in features]
        scores = reference.class_scores or {}
        labels = [str(category_text(c)) for c in classes or ()]
        # the classes with a reference (all of them, or the most often predicted ones
        # when there are more than MAX_CATEGORY_BINS), by score column
        self._score_columns = [i for i, c in enumerate(labels) if c in scores]
        self.class_scores = [
            self._add("class_score", labels[i], scores[labels[i]]) for i in self._score_columns
        ]

    def _add(self, kind: SegmentKind, name: str, distribution: Distribution) -> Segment:
        segment = Segment(
            kind=kind,
            name=name,
            labels=tuple(distribution.bin_labels()),
            # no training value: proportions all 0, so the statistics are NaN
            reference=np.asarray(distribution.proportions, dtype=np.float64)
            * (1.0 if distribution.has_data else 0.0),
            start=self.width,
            binner=_binner(distribution),
        )
        self.width = segment.missing_index + 1
        return segment

    @property
    def segments(self) -> list[Segment]:
        return [self.prediction, *self.features, *self.class_scores]

    def count(
        self,
        frame: pd.DataFrame,
        predictions: npt.NDArray[Any],
        scores: npt.NDArray[np.float64] | None,
    ) -> Counts:
        """The count vector of one batch (frame rows aligned with the outputs)."""
        parts = [self.prediction.binner.count(predictions)]
        # ``.array``: no conversion (pandas keeps strings as an Arrow-backed str array)
        parts.extend(s.binner.count(frame[s.name].array) for s in self.features)
        if self.class_scores and scores is not None and len(scores):
            columns = zip(self._score_columns, self.class_scores, strict=True)
            parts.extend(s.binner.count(scores[:, i]) for i, s in columns)
        elif self.class_scores:
            parts.extend(np.zeros(len(s.labels) + 1, dtype=np.int64) for s in self.class_scores)
        return np.concatenate(parts)


@dataclass(frozen=True)
class DriftReport:
    """Drift of one window: per distribution PSI/KS/JS, and missing ratios."""

    events: int
    prediction: DriftStats
    features: dict[str, DriftStats]
    class_scores: dict[str, DriftStats]
    missing_ratio: dict[str, float]


def drift_report(layout: DriftLayout, totals: Counts, events: int) -> DriftReport:
    """Statistics of a window's totals (``SlidingWindow.totals``)."""

    def stats(segment: Segment) -> DriftStats:
        return drift_stats(segment.bins(totals), segment.reference) if events else NO_DATA

    return DriftReport(
        events=events,
        prediction=stats(layout.prediction),
        features={s.name: stats(s) for s in layout.features},
        class_scores={s.name: stats(s) for s in layout.class_scores},
        missing_ratio={
            s.name: int(totals[s.missing_index]) / events if events else float("nan")
            for s in layout.features
        },
    )
