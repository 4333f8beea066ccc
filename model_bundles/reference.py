"""Reference data saved in a bundle: the research side of parity and drift.

- the golden sample: holdout events with their exact research outputs, re-scored
  at every load;
- per-feature reference distributions (bins, proportions, missing rate);
- the distribution of research predictions on the holdout.

Bins are fixed at build time and shared by every replica, so live counts per
bin can be summed across a fleet (Prometheus) and compared with one reference.

Bin labels never collide: the reserved labels (``__unknown__``, ``__empty__``,
``__other__``) start with exactly two underscores, and a training category that starts with two is
labelled with one more (``bin_label``), so no category can take a reserved label.
A feature with no value in training has all proportions 0 (``has_data`` is false):
its drift is NaN, never "no drift", and building such a bundle warns.

The number of bins of a categorical distribution is capped whatever the training data
(``MAX_CATEGORY_BINS``): a feature with more training categories keeps the most frequent
ones as bins and merges the rest into one ``__other__`` bin (``other``), and building
such a bundle warns, naming the feature. Two reasons, both about the series a fleet
exports: each bin is a Prometheus series per replica (26,000 merchant ids were 52,000
series and 3.8 MB per scrape), and PSI's expected value on undrifted data grows with the
number of bins, about (bins - 1) / window events (Yurdakul and Naranjo, "Statistical
properties of the population stability index", Journal of Risk Model Validation, 2020:
PSI is about (1/N + 1/M) times a chi-square with bins - 1 degrees of freedom), so 2,432
zip codes in a 10,000-event window read 0.21 on the training rows themselves.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from model_bundles.values import category_text, float_values
from schemas.manifest import FeatureSpec, Label

NUMERIC_BINS = 10
UNKNOWN_BIN = "__unknown__"
"""Label of the categorical bin of values never seen in training."""
EMPTY_BIN = "__empty__"
"""Label of the bin of the empty-string category (an empty label value would be the
same series as no label at all, in Prometheus)."""
OTHER_BIN = "__other__"
"""Label of the bin of the training categories beyond ``MAX_CATEGORY_BINS``."""
RESERVED_BINS: tuple[str, ...] = (UNKNOWN_BIN, EMPTY_BIN, OTHER_BIN)
MAX_CATEGORY_BINS = 20
"""At most this many categories of a distribution get a bin of their own (then
``__other__`` and ``__unknown__``): with a 10,000-event window, PSI on undrifted data
stays about 22 / 10,000 = 0.002 whatever the number of categories."""


class EmptyFeatureWarning(UserWarning):
    """A feature has no (non-missing) value in the training data: its drift is NaN."""


class ManyCategoriesWarning(UserWarning):
    """A feature has more training categories than ``MAX_CATEGORY_BINS``: drift and
    metrics track the most frequent, the others share the ``__other__`` bin."""


def bin_label(category: str) -> str:
    """The bin label of a training category, one to one and never a reserved label.

    Reserved labels start with exactly two underscores. A category that starts with
    two gets one more in front (``__unknown__`` -> ``___unknown__``, ``___x`` ->
    ``____x``); the empty category is ``__empty__``; every other category is its own
    label.
    """
    if category == "":
        return EMPTY_BIN
    return "_" + category if category.startswith("__") else category


class NumericReference(BaseModel):
    """Quantile bins of a numeric value: bin i is (edges[i-1], edges[i]], open at both ends."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["numeric"] = "numeric"
    edges: list[float] = Field(description="interior bin edges, ascending, unique")
    proportions: list[float] = Field(description="share of non-missing values per bin")
    missing_rate: float

    def bin_labels(self) -> list[str]:
        return [str(i) for i in range(len(self.proportions))]

    @property
    def has_data(self) -> bool:
        """Whether training had any non-missing value (else drift against it is NaN)."""
        return self.missing_rate < 1.0 and any(p > 0 for p in self.proportions)

    def bin_indices(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """Bin of each non-missing value (NaN must be filtered out first)."""
        return np.searchsorted(np.asarray(self.edges), values, side="left")


class CategoricalReference(BaseModel):
    """Category shares; the last bin is categories never seen in training.

    With ``other`` (training categories beyond ``MAX_CATEGORY_BINS``), the bins are the
    tracked ``categories``, then ``__other__`` (the ``other`` categories together), then
    ``__unknown__``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["categorical"] = "categorical"
    categories: list[str] = Field(description="the categories with a bin of their own")
    proportions: list[float] = Field(
        description="one per category, then the other bin (when there is one), then unknown"
    )
    missing_rate: float
    other: list[str] | None = Field(
        default=None, description="training categories merged into the __other__ bin"
    )

    def bin_labels(self) -> list[str]:
        """One label per category (``bin_label``), ``__other__`` when categories were
        merged, then ``__unknown__``: all distinct."""
        other = [OTHER_BIN] if self.other else []
        return [*(bin_label(c) for c in self.categories), *other, UNKNOWN_BIN]

    @property
    def has_data(self) -> bool:
        """Whether training had any non-missing value (else drift against it is NaN)."""
        return self.missing_rate < 1.0 and any(p > 0 for p in self.proportions)


Distribution = NumericReference | CategoricalReference


class GoldenRow(BaseModel):
    """One holdout event and what research computed for it, exactly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: dict[str, Any]
    prediction: Label
    scores: list[float] | None


class Reference(BaseModel):
    """reference.json of a bundle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    features: dict[str, Distribution]
    prediction: Distribution = Field(
        description="research predictions on the holdout: class labels or value bins"
    )
    class_scores: dict[str, NumericReference] | None = Field(
        default=None, description="per class, the distribution of its probability"
    )
    golden: list[GoldenRow]


def numeric_reference(
    values: npt.NDArray[np.float64], bins: int = NUMERIC_BINS
) -> NumericReference:
    """Quantile bins over the non-missing values; one bin of proportion 0 when there is
    none (no reference data)."""
    missing = np.isnan(values)
    present = values[~missing]
    missing_rate = float(missing.mean()) if len(values) else 1.0
    if len(present) == 0:
        return NumericReference(edges=[], proportions=[0.0], missing_rate=missing_rate)
    quantiles = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1], method="linear")
    edges = np.unique(quantiles)
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    return NumericReference(
        edges=[float(e) for e in edges],
        proportions=[float(c) for c in counts / len(present)],
        missing_rate=missing_rate,
    )


def categorical_reference(
    values: Sequence[Any], categories: Sequence[str], max_bins: int = MAX_CATEGORY_BINS
) -> CategoricalReference:
    """Shares of each category among the non-missing ``values``, then of the others.

    More than ``max_bins`` categories: the ``max_bins`` most frequent in ``values``
    (ties in ``categories`` order) keep their bin, in ``categories`` order, and the rest
    are listed in ``other`` and share one bin.
    """
    series = pd.Series(values, dtype=object)
    missing = series.isna()
    present = series[~missing]
    counts = present.value_counts()
    total = max(len(present), 1)
    shares = [float(counts.get(c, 0)) / total for c in categories]
    unknown = float((~present.isin(list(categories))).sum()) / total
    missing_rate = float(missing.mean()) if len(series) else 1.0
    if len(categories) <= max_bins:
        return CategoricalReference(
            categories=list(categories), proportions=[*shares, unknown], missing_rate=missing_rate
        )
    # a stable sort on the negated counts: the most frequent first, ties in given order
    order = np.argsort(-np.asarray(shares), kind="stable")
    kept = np.zeros(len(categories), dtype=bool)
    kept[order[:max_bins]] = True
    tracked = [i for i in range(len(categories)) if kept[i]]
    return CategoricalReference(
        categories=[categories[i] for i in tracked],
        proportions=[
            *(shares[i] for i in tracked),
            float(sum(share for share, k in zip(shares, kept, strict=True) if not k)),
            unknown,
        ],
        missing_rate=missing_rate,
        other=[c for c, k in zip(categories, kept, strict=True) if not k],
    )


def feature_references(
    frame: pd.DataFrame, features: Sequence[FeatureSpec]
) -> dict[str, Distribution]:
    """Reference distribution of every input feature over the training rows.

    Warns (``EmptyFeatureWarning``) for each feature without any non-missing value.
    """
    out: dict[str, Distribution] = {}
    for feature in features:
        column = frame[feature.name]
        reference: Distribution
        if feature.kind == "numeric":
            reference = numeric_reference(float_values(column))
        else:
            texts = column.tolist() if feature.canonical else list(map(category_text, column))
            reference = categorical_reference(texts, feature.categories or [])
        if not reference.has_data:
            warnings.warn(
                f"feature {feature.name} has no value in the training data "
                f"({reference.missing_rate:.0%} missing): its drift will be NaN",
                EmptyFeatureWarning,
                stacklevel=2,
            )
        if isinstance(reference, CategoricalReference) and reference.other:
            _warn_capped(feature.name, reference)
        out[feature.name] = reference
    return out


def _warn_capped(name: str, reference: CategoricalReference) -> None:
    tracked = len(reference.categories)
    covered = sum(reference.proportions[:tracked])
    warnings.warn(
        f"feature {name} has {tracked + len(reference.other or ()):,} training categories: "
        f"drift and metrics track the {tracked} most frequent ({covered:.1%} of training "
        f"values), the other {len(reference.other or ()):,} share the {OTHER_BIN} bin "
        "(docs/metrics.md, 'Bounded series')",
        ManyCategoriesWarning,
        stacklevel=3,
    )
