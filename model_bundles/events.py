"""Events (decoded JSON objects) to the model's input frame.

Every path that scores (research ``score``, the Python API, the live worker,
replay, the load-time self-check) builds its frame with ``events_to_frame``, or
with ``check_batch``, which validates and builds the same frame column by column
(a property test holds the two to ``check_event`` and ``events_to_frame``), so
an event's outputs cannot depend on which path or batch size scored it.

A feature in the canonical form of a config build (float64, object) follows
``model_bundles.values``; a feature with the dtype a pipeline was fitted on
(int64, bool, str, category, datetime64...) follows ``model_bundles.dtypes``,
one value at a time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from model_bundles.dtypes import frame_type
from model_bundles.values import (
    categorical_array,
    category_text,
    event_types,
    is_missing,
    numeric_array,
)
from schemas.errors import BadInputError
from schemas.manifest import FeatureSpec
from schemas.rejection import Rejection
from schemas.wire_names import RejectReason

_TEXT_OR_NULL = frozenset({str, type(None)})
_FLOAT_MAX_INT = 2**1024 - 2**970
"""The smallest integer that ``float()`` refuses (it would round to 2**1024)."""


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
    if not feature.canonical:
        mismatch = frame_type(feature).mismatch(value)
        if mismatch is None:
            return None
        if mismatch.reason == RejectReason.NON_FINITE:
            return Rejection(
                mismatch.reason, f"feature {feature.name!r} must be {mismatch.expected}"
            )
        return _wrong_type(feature, f"{mismatch.expected} ({feature.dtype})", value)
    if feature.kind == "categorical":
        allowed = event_types(feature)
        if type(value) in allowed:
            return None
        return _wrong_type(feature, _CATEGORY_TYPES[allowed], value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _wrong_type(feature, "a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        return Rejection(RejectReason.NON_FINITE, f"feature {feature.name!r} is {value!r}")
    if isinstance(value, int) and not -_FLOAT_MAX_INT < value < _FLOAT_MAX_INT:
        # JSON allows it (orjson refuses, the lenient stdlib fallback reads it), but as a
        # float64 it is infinite: scoring it would fail the whole batch.
        return Rejection(
            RejectReason.NON_FINITE, f"feature {feature.name!r} is an integer beyond float64"
        )
    return None


_CATEGORY_TYPES = {
    frozenset({str}): "a string",
    frozenset({str, int}): "a string or an integer",
    frozenset({str, bool}): "a string or a boolean",
    frozenset({str, int, bool}): "a string, an integer or a boolean",
}


def _wrong_type(feature: FeatureSpec, expected: str, value: Any) -> Rejection:
    got = _JSON_TYPES.get(type(value), type(value).__name__)
    shown = repr(value) if type(value) in _JSON_TYPES and len(repr(value)) <= 40 else got
    return Rejection(
        RejectReason.WRONG_TYPE, f"feature {feature.name!r} must be {expected}, got {shown}"
    )


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def events_to_frame(
    events: Sequence[Mapping[str, Any]], features: Sequence[FeatureSpec]
) -> pd.DataFrame:
    """Build the model input frame from already-checked events.

    Columns in training order; numeric as float64 with NaN for null; categorical
    as object with NaN (never None) for null, so imputers see the same missing
    value in a 1-row frame as in a 10,000-row one.
    """
    columns: list[Any] = []
    for feature in features:
        values = [e[feature.name] for e in events]
        if not feature.canonical:
            columns.append(frame_type(feature).column(values))
        elif feature.kind == "numeric":
            columns.append(_numbers(values))
        else:
            columns.append(category_column(values))
    return frame_of(features, columns)


def _numbers(values: list[Any]) -> npt.NDArray[np.float64]:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def category_column(values: list[Any]) -> npt.NDArray[np.object_]:
    """Checked categorical values in their canonical text (an integer 1 is "1"), NaN for null."""
    if not set(map(type, values)) <= _TEXT_OR_NULL:
        return categorical_array(values)
    column = np.empty(len(values), dtype=object)
    column[:] = values if None not in values else [np.nan if v is None else v for v in values]
    return column


def frame_of(features: Sequence[FeatureSpec], columns: Sequence[Any]) -> pd.DataFrame:
    """The model input frame of ``columns`` (one per feature, in order, each of the rows'
    values in the feature's frame type)."""
    # An explicit object Series: from a bare object array pandas would infer its ``str``
    # dtype, which every transformer converts back to object on every call. One index
    # object for all: pandas then has no indexes to align.
    index = pd.RangeIndex(len(columns[0]) if columns else 0)
    return pd.DataFrame(
        {
            f.name: pd.Series(c, index=index, dtype=object, copy=False)
            if f.kind == "categorical" and f.canonical
            else pd.Series(c, index=index, copy=False)
            for f, c in zip(features, columns, strict=True)
        },
        index=index,
        copy=False,
    )


# --- the batch path: check_event and events_to_frame, one column at a time -----------------


class _Absent:
    """Stands for an absent key in a gathered column: its type is never a valid one."""


_ABSENT = _Absent()
_PLAIN: dict[tuple[str, bool], frozenset[type]] = {
    ("numeric", False): frozenset({float, int}),
    ("numeric", True): frozenset({float, int, type(None)}),
    ("categorical", False): frozenset({str}),
    ("categorical", True): frozenset({str, type(None)}),
}
"""Exact value types that ``check_event`` accepts for a feature (numbers still need a
finiteness check). Any other type, subclasses included, is left to ``check_event``."""


@dataclass(frozen=True, slots=True)
class CheckedBatch:
    """A batch of decoded events, validated and turned into the model input frame."""

    accepted: list[int]
    """Positions (in the batch) of the events that can be scored, in batch order."""
    rejected: list[tuple[int, Rejection]]
    """Position and ``check_event``'s verdict of every other event, in batch order."""
    frame: pd.DataFrame
    """``events_to_frame`` of the accepted events."""
    unknown_categories: dict[str, int]
    """Accepted values never seen in training, per categorical feature (when any)."""


def check_batch(
    events: Sequence[Mapping[str, Any]], features: Sequence[FeatureSpec]
) -> CheckedBatch:
    """``check_event`` on each event, then ``events_to_frame`` of the valid ones, per column.

    ``check_event`` stays the definition of validity: a value of an exact JSON type
    that is plainly valid is accepted column-wise; every event holding any other value
    (absent, null where not imputed, another type, non-finite) is handed to
    ``check_event``, whose verdict and detail (first failing feature) are kept.
    """
    columns = [_Column.gather(feature, events) for feature in features]
    suspects = sorted(set().union(*(c.suspects for c in columns)))
    rejected = [(i, r) for i in suspects if (r := check_event(events[i], features)) is not None]
    accepted = list(range(len(events)))
    if rejected:
        dropped = {i for i, _ in rejected}
        accepted = [i for i in accepted if i not in dropped]
        columns = [c.take(accepted) for c in columns]
    unknown = {c.feature.name: n for c in columns if (n := c.unknown_count())}
    return CheckedBatch(
        accepted, rejected, frame_of(features, [c.array() for c in columns]), unknown
    )


@dataclass(slots=True)
class _Column:
    feature: FeatureSpec
    values: list[Any]
    suspects: list[int]
    numbers: npt.NDArray[np.float64] | None = None
    """The float64 column, when the values were all plain numbers (or nulls)."""

    @classmethod
    def gather(cls, feature: FeatureSpec, events: Sequence[Mapping[str, Any]]) -> _Column:
        name = feature.name
        try:
            values = list(map(itemgetter(name), events))
        except KeyError:
            values = [e.get(name, _ABSENT) for e in events]
        if not feature.canonical:
            return cls(feature, values, _typed_suspects(feature, values))
        plain = _PLAIN[feature.kind, feature.nullable]
        plain_types = set(map(type, values)) <= plain
        if feature.kind == "categorical":
            suspects = (
                [] if plain_types else [i for i, v in enumerate(values) if type(v) not in plain]
            )
            return cls(feature, values, suspects)
        if plain_types:
            try:
                numbers = np.array(values, dtype=np.float64)  # None -> NaN, as in _numbers
            except OverflowError:  # an integer beyond float64: look at each value
                pass
            else:
                infinite = np.flatnonzero(~np.isfinite(numbers)).tolist()
                return cls(feature, values, [i for i in infinite if values[i] is not None], numbers)
        suspects = [
            i
            for i, v in enumerate(values)
            if type(v) not in plain or (v is not None and not -_FLOAT_MAX_INT < v < _FLOAT_MAX_INT)
        ]
        return cls(feature, values, suspects)

    def take(self, rows: list[int]) -> _Column:
        values = [self.values[i] for i in rows]
        numbers = None if self.numbers is None else self.numbers[rows]
        return _Column(self.feature, values, [], numbers)

    def array(self) -> Any:
        if not self.feature.canonical:
            return frame_type(self.feature).column(self.values)
        if self.feature.kind == "categorical":
            return category_column(self.values)
        return self.numbers if self.numbers is not None else _numbers(self.values)

    def unknown_count(self) -> int:
        return unknown_count(self.feature, self.values) if self.feature.kind == "categorical" else 0


def unknown_count(feature: FeatureSpec, values: list[Any]) -> int:
    """How many of a categorical feature's checked values (nulls aside) training never saw."""
    known = frozenset(feature.categories or ())
    if not set(map(type, values)) <= _TEXT_OR_NULL:
        values = [category_text(v) for v in values]
    # counted per distinct value (Counter counts in C): a batch holds few distinct ones
    counts = Counter(values)
    return sum(n for value, n in counts.items() if value is not None and value not in known)


def _typed_suspects(feature: FeatureSpec, values: list[Any]) -> list[int]:
    """Positions of values ``check_event`` must judge: absent, null where not imputed,
    or not fitting the fitted dtype."""
    mismatch = frame_type(feature).mismatch
    nullable = feature.nullable
    return [
        i
        for i, v in enumerate(values)
        if (v is None and not nullable) or (v is not None and mismatch(v) is not None)
    ]


def normalize_frame(frame: pd.DataFrame, features: Sequence[FeatureSpec]) -> pd.DataFrame:
    """Bring a user's DataFrame (training data, research batch) to the same dtypes.

    Canonical features: categorical values become their canonical text
    (``model_bundles.values``: an integer 1 is "1", as the JSON integer 1 or string
    "1" of an event), nulls become NaN; numeric columns become float64
    (BadInputError naming the column and row for a value that is not a number).
    A feature with a fitted dtype must have exactly that dtype (BadInputError
    naming the column otherwise); its column is taken as it is.
    """
    columns: dict[str, Any] = {}
    for feature in features:
        column = frame[feature.name]
        if not feature.canonical:
            columns[feature.name] = _fitted_column(column, feature)
        elif feature.kind == "numeric":
            columns[feature.name] = numeric_array(column, feature.name)
        else:
            columns[feature.name] = categorical_array(column.tolist())
    return pd.DataFrame(columns, index=pd.RangeIndex(len(frame)), copy=False)


def _fitted_column(column: pd.Series, feature: FeatureSpec) -> Any:
    expected = frame_type(feature).pandas_dtype
    if column.dtype != expected:
        raise BadInputError(
            f"column {feature.name!r} is {column.dtype}, but the bundle was fitted on "
            f"{feature.dtype}: pass the frame with the dtypes it was fitted on"
        )
    return column.array


def _canonical_json(value: Any) -> Any:
    return None if is_missing(value) else value


def frame_to_events(frame: pd.DataFrame, features: Sequence[FeatureSpec]) -> list[dict[str, Any]]:
    """The inverse of ``events_to_frame``: rows as the JSON values a producer writes
    (NaN, NA, NaT -> None; numpy scalars -> Python; datetimes -> ISO 8601 text)."""
    normalized = normalize_frame(frame, features)
    names = [f.name for f in features]
    encoders: list[Callable[[Any], Any]] = [
        _canonical_json if f.canonical else frame_type(f).to_json for f in features
    ]
    out: list[dict[str, Any]] = []
    for row in normalized.itertuples(index=False, name=None):
        out.append({n: encode(v) for n, encode, v in zip(names, encoders, row, strict=True)})
    return out
