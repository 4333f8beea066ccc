"""A research team's own feature code, as it sits beside their notebook.

``BillShape`` adds two derived columns; ``first_letter`` is a plain function
used through ``FunctionTransformer``. Neither is part of any installed package:
the bundle carries this file in ``code/`` and the worker imports it from there,
only when the operator trusts its digest (SPEC "Trust").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class BillShape(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Adds ``bill_ratio`` (length / depth) and ``bill_area`` (length x depth), clipped to
    the training range so an outlier cannot leave the space the model saw."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> BillShape:
        ratio, area = _shape(X)
        self.ratio_range_ = (float(np.nanmin(ratio)), float(np.nanmax(ratio)))
        self.area_range_ = (float(np.nanmin(area)), float(np.nanmax(area)))
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        ratio, area = _shape(X)
        out = X.copy()
        out["bill_ratio"] = ratio.clip(*self.ratio_range_)
        out["bill_area"] = area.clip(*self.area_range_)
        return out


def _shape(X: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    length = X["bill_length_mm"].astype("float64")
    depth = X["bill_depth_mm"].astype("float64")
    return length / depth, length * depth


def first_letter(X: pd.DataFrame) -> pd.DataFrame:
    """The island's initial: a coarser category (``Biscoe`` -> ``B``); missing stays missing."""
    out = X.copy()
    out["island"] = out["island"].map(lambda v: v[:1] if isinstance(v, str) else v)
    return out
