"""Events (decoded JSON objects) to the model's input frame.

Every path that scores (research ``score``, the Python API, the live worker,
replay, the load-time self-check) goes through ``events_to_frame``, so an
event's outputs cannot depend on which path or batch size scored it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from schemas.manifest import FeatureSpec
from schemas.records import RejectReason


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one event cannot be scored."""

    reason: RejectReason
    detail: str


def check_event(event: Mapping[str, Any], features: Sequence[FeatureSpec]) -> Rejection | None:
    """Validate one decoded event against the bundle's features; None when it can be scored.

    Absent key: missing_feature. Null: a missing value, allowed only when the
    pipeline imputes that feature. Extra keys are ignored.
    """
    for feature in features:
        try:
            value = event[feature.name]
        except KeyError:
            return Rejection(RejectReason.MISSING_FEATURE, f"feature {feature.name!r} is absent")
        if value is None:
            if feature.nullable:
                continue
            return Rejection(
                RejectReason.MISSING_FEATURE, f"feature {feature.name!r} is null and not imputed"
            )
        rejection = _check_value(feature, value)
        if rejection is not None:
            return rejection
    return None


def _check_value(feature: FeatureSpec, value: Any) -> Rejection | None:
    if feature.kind == "categorical":
        if isinstance(value, str):
            return None
        return _wrong_type(feature, "a string", value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _wrong_type(feature, "a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        return Rejection(RejectReason.NON_FINITE, f"feature {feature.name!r} is {value!r}")
    return None


def _wrong_type(feature: FeatureSpec, expected: str, value: Any) -> Rejection:
    got = "boolean" if isinstance(value, bool) else type(value).__name__
    return Rejection(
        RejectReason.WRONG_TYPE, f"feature {feature.name!r} must be {expected}, got {got}"
    )


def events_to_frame(
    events: Sequence[Mapping[str, Any]], features: Sequence[FeatureSpec]
) -> pd.DataFrame:
    """Build the model input frame from already-checked events.

    Columns in training order; numeric as float64 with NaN for null; categorical
    as object with NaN (never None) for null, so imputers see the same missing
    value in a 1-row frame as in a 10,000-row one.
    """
    columns: dict[str, Any] = {}
    for feature in features:
        name = feature.name
        if feature.kind == "numeric":
            columns[name] = np.array(
                [np.nan if (v := e[name]) is None else v for e in events], dtype=np.float64
            )
        else:
            values = np.empty(len(events), dtype=object)
            values[:] = [np.nan if (v := e[name]) is None else v for e in events]
            columns[name] = values
    return pd.DataFrame(columns, copy=False)


def normalize_frame(frame: pd.DataFrame, features: Sequence[FeatureSpec]) -> pd.DataFrame:
    """Bring a user's DataFrame (training data, research batch) to the same dtypes.

    Categorical values become ``str`` (so a CSV column read as int matches JSON
    strings), nulls become NaN; numeric columns become float64.
    """
    columns: dict[str, Any] = {}
    for feature in features:
        column = frame[feature.name]
        if feature.kind == "numeric":
            columns[feature.name] = pd.to_numeric(column, errors="raise").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        else:
            values = np.empty(len(column), dtype=object)
            values[:] = [np.nan if _is_null(v) else str(v) for v in column.tolist()]
            columns[feature.name] = values
    return pd.DataFrame(columns, index=pd.RangeIndex(len(frame)), copy=False)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def frame_to_events(frame: pd.DataFrame, features: Sequence[FeatureSpec]) -> list[dict[str, Any]]:
    """The inverse of ``events_to_frame``: rows as JSON-ready dicts (NaN -> None)."""
    normalized = normalize_frame(frame, features)
    names = [f.name for f in features]
    out: list[dict[str, Any]] = []
    for row in normalized.itertuples(index=False, name=None):
        out.append({n: (None if _is_null(v) else v) for n, v in zip(names, row, strict=True)})
    return out
