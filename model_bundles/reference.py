"""Reference data saved in a bundle: the research side of parity and drift.

- the golden sample: holdout events with their exact research outputs, re-scored
  at every load;
- per-feature reference distributions (bins, proportions, missing rate);
- the distribution of research predictions on the holdout.

Bins are fixed at build time and shared by every replica, so live counts per
bin can be summed across a fleet (Prometheus) and compared with one reference.

Bin labels never collide: the reserved labels (``__unknown__``, ``__empty__``) start
with exactly two underscores, and a training category that starts with two is
labelled with one more (``bin_label``), so no category can take a reserved label.
A feature with no value in training has all proportions 0 (``has_data`` is false):
its drift is NaN, never "no drift", and building such a bundle warns.
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
RESERVED_BINS: tuple[str, ...] = (UNKNOWN_BIN, EMPTY_BIN)


class EmptyFeatureWarning(UserWarning):
    """A feature has no (non-missing) value in the training data: its drift is NaN."""


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
    """Category shares; the last bin is categories never seen in training."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["categorical"] = "categorical"
    categories: list[str]
    proportions: list[float] = Field(description="one per category, then the unknown bin")
    missing_rate: float

    def bin_labels(self) -> list[str]:
        """One label per category (``bin_label``), then ``__unknown__``: all distinct."""
        return [*(bin_label(c) for c in self.categories), UNKNOWN_BIN]

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


def categorical_reference(values: Sequence[Any], categories: Sequence[str]) -> CategoricalReference:
    series = pd.Series(values, dtype=object)
    missing = series.isna()
    present = series[~missing]
    counts = present.value_counts()
    total = max(len(present), 1)
    proportions = [float(counts.get(c, 0)) / total for c in categories]
    unknown = float((~present.isin(list(categories))).sum()) / total
    return CategoricalReference(
        categories=list(categories),
        proportions=[*proportions, unknown],
        missing_rate=float(missing.mean()) if len(series) else 1.0,
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
        out[feature.name] = reference
    return out
