"""Column types as fitted: the pandas dtype of each input column, its JSON values, its column.

A pipeline fitted with the Python API saw a frame whose columns had dtypes
(``pd.read_csv`` gives int64, bool, float64, ``str``...). The bundle records
each one (``FeatureSpec.dtype``, and ``category_dtype`` for a pandas category),
and every serving path builds exactly that column from the events' JSON values,
one value at a time, so a value's meaning never depends on its neighbours:

| fitted dtype | JSON value | null |
| --- | --- | --- |
| int8..int64, uint8..uint64 | an integer within the dtype's range | never (no missing value) |
| Int8..Int64, UInt8..UInt64 | an integer within range | ``pd.NA`` |
| float32, float64, Float32, Float64 | a number (an integer is that number) | NaN / ``pd.NA`` |
| bool | ``true`` / ``false`` | never |
| boolean | ``true`` / ``false`` | ``pd.NA`` |
| str, string | a string | NaN (``str``) / ``pd.NA`` (``string``) |
| category | one of the dtype's categories, of their JSON type | NaN |
| datetime64[unit] and [unit, tz] | an ISO 8601 string (``DATETIME_TEXT``) | NaT |

Any other value is ``wrong_type`` (``"3"`` or ``3.5`` for an integer column,
``"yes"`` or ``1`` for a bool, ``3`` for a string, or a string holding a lone surrogate
such as ``"\ud800"``, which is no Unicode text); a number too large for the
dtype is ``wrong_type`` for integers, ``non_finite`` for floats.

Datetimes: one rule for every event. A value with an offset (``Z``, ``+01:00``)
is that instant; a value without one is read as UTC. The instant is then put in
the column's zone, or, for a column fitted without a zone, kept as UTC wall-clock
time without a zone (a naive value is taken as written). A value more precise
than the column's unit (nanoseconds in a ``us`` column) is ``wrong_type``.

The canonical dtypes of a config build (``float64``, ``object``) keep the rules
of ``model_bundles.values`` and are not handled here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from schemas.errors import BadInputError
from schemas.manifest import DTYPE_PATTERN, CategoryDtypeSpec, FeatureSpec
from schemas.wire_names import RejectReason

DATETIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
"""``2024-03-01``, ``2024-03-01 03:00``, ``2024-03-01T03:00:00.5Z``, ``...+01:00``."""

_FLOAT64_MAX_INT = 2**1024 - 2**970


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Why a JSON value does not fit a column's dtype."""

    reason: RejectReason
    expected: str


class FrameType:
    """How the JSON values of one feature become its column (one subclass per dtype family)."""

    expected = "a value"
    holds_missing = True

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype
        self.pandas_dtype: Any = pd.api.types.pandas_dtype(dtype)

    def mismatch(self, value: Any) -> Mismatch | None:
        """None when the (non-null) JSON value fits the column."""
        raise NotImplementedError

    def column(self, values: Sequence[Any]) -> Any:
        """The column (array or ExtensionArray) of checked values, None for null."""
        return pd.array(list(values), dtype=self.pandas_dtype)

    def to_json(self, value: Any) -> Any:
        """A frame value as a producer writes it in JSON (None when missing)."""
        return None if _missing(value) else _plain(value)

    def _wrong(self) -> Mismatch:
        return Mismatch(RejectReason.WRONG_TYPE, self.expected)


class IntegerType(FrameType):
    expected = "an integer"

    def __init__(self, dtype: str) -> None:
        super().__init__(dtype)
        info = np.iinfo(self.pandas_dtype.numpy_dtype if self.nullable else self.pandas_dtype)
        self.low, self.high = int(info.min), int(info.max)
        self.holds_missing = self.nullable

    @property
    def nullable(self) -> bool:
        return self.dtype[0] in "IU"

    def mismatch(self, value: Any) -> Mismatch | None:
        if type(value) is not int:
            return self._wrong()
        if self.low <= value <= self.high:
            return None
        return Mismatch(RejectReason.WRONG_TYPE, f"an integer from {self.low} to {self.high}")

    def column(self, values: Sequence[Any]) -> Any:
        if self.nullable:
            return super().column(values)
        return np.array(values, dtype=self.pandas_dtype)


class FloatType(FrameType):
    expected = "a number"

    def mismatch(self, value: Any) -> Mismatch | None:
        if type(value) is int:
            if -_FLOAT64_MAX_INT < value < _FLOAT64_MAX_INT:
                return self._finite(float(value))
            return Mismatch(RejectReason.NON_FINITE, "a number within float64's range")
        if type(value) is float:
            return self._finite(value)
        return self._wrong()

    def _finite(self, number: float) -> Mismatch | None:
        if not math.isfinite(number):
            return Mismatch(RejectReason.NON_FINITE, "a finite number")
        if self.dtype.lower() == "float32" and not math.isfinite(float(np.float32(number))):
            return Mismatch(RejectReason.NON_FINITE, "a number within float32's range")
        return None

    def column(self, values: Sequence[Any]) -> Any:
        if self.dtype[0] == "F":
            return super().column(values)
        numbers = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        return numbers.astype(self.pandas_dtype, copy=False)


class BooleanType(FrameType):
    expected = "true or false"

    def __init__(self, dtype: str) -> None:
        super().__init__(dtype)
        self.holds_missing = dtype == "boolean"

    def mismatch(self, value: Any) -> Mismatch | None:
        return None if type(value) is bool else self._wrong()

    def column(self, values: Sequence[Any]) -> Any:
        if self.holds_missing:
            return super().column(values)
        return np.array(values, dtype=bool)


class TextType(FrameType):
    expected = "a string"

    def mismatch(self, value: Any) -> Mismatch | None:
        if type(value) is not str:
            return self._wrong()
        if value.isascii():
            return None
        try:  # a str or string column holds UTF-8 (pyarrow's, when pandas has it)
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, "\ud800" escaped in the JSON
            return Mismatch(RejectReason.WRONG_TYPE, "a string of Unicode text")
        return None


class CategoryType(FrameType):
    def __init__(self, dtype: str, spec: CategoryDtypeSpec) -> None:
        super().__init__(dtype)
        self.pandas_dtype = pd.CategoricalDtype(spec.categories, ordered=spec.ordered)
        self.known = frozenset(spec.categories)
        kinds: frozenset[type] = frozenset(type(c) for c in spec.categories)
        # a float category is a JSON number: 1 and 1.0 are the same category
        self.types = frozenset({int, float}) if kinds == {float} else kinds
        more = " ..." if len(spec.categories) > 10 else ""
        shown = ", ".join(map(repr, spec.categories[:10])) + more
        self.expected = f"one of the category dtype's categories ({shown})"

    def mismatch(self, value: Any) -> Mismatch | None:
        if type(value) in self.types and value in self.known:
            return None
        return self._wrong()

    def column(self, values: Sequence[Any]) -> Any:
        return pd.Categorical(list(values), dtype=self.pandas_dtype)


class DatetimeType(FrameType):
    expected = "an ISO 8601 date-time string"

    def __init__(self, dtype: str) -> None:
        super().__init__(dtype)
        unit = np.datetime_data(np.dtype(dtype.split(",")[0].rstrip("]") + "]"))[0]
        self.unit: Literal["s", "ms", "us", "ns"] = unit  # type: ignore[assignment]
        self.tz: Any = getattr(self.pandas_dtype, "tz", None)
        self.expected = f"an ISO 8601 date-time string (to {self.unit})"

    def parse(self, value: Any) -> pd.Timestamp | None:
        """The value as a naive UTC timestamp in the column's unit; None when it is not one."""
        if type(value) is not str or DATETIME_TEXT.fullmatch(value) is None:
            return None
        try:
            stamp = pd.Timestamp(value)
            if stamp.tzinfo is not None:
                stamp = stamp.tz_convert("UTC").tz_localize(None)
            return stamp.as_unit(self.unit, round_ok=False)
        except (ValueError, OverflowError):  # not a date, out of range, too precise
            return None

    def mismatch(self, value: Any) -> Mismatch | None:
        return None if self.parse(value) is not None else self._wrong()

    def column(self, values: Sequence[Any]) -> Any:
        stamps = [None if v is None else self.parse(v) for v in values]
        ticks = np.array(
            [np.datetime64("NaT") if s is None else s.to_datetime64() for s in stamps],
            dtype=f"datetime64[{self.unit}]",
        )
        index = pd.DatetimeIndex(ticks)
        if self.tz is not None:
            index = index.tz_localize("UTC").tz_convert(self.tz)
        return index.array

    def to_json(self, value: Any) -> Any:
        return None if _missing(value) else pd.Timestamp(value).isoformat()


_CACHE: dict[int, tuple[FeatureSpec, FrameType]] = {}


def frame_type(feature: FeatureSpec) -> FrameType:
    """The ``FrameType`` of a feature with a fitted (non-canonical) dtype, cached per spec."""
    cached = _CACHE.get(id(feature))
    if cached is not None and cached[0] is feature:
        return cached[1]
    made = _make(feature.dtype, feature.category_dtype)
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[id(feature)] = (feature, made)
    return made


def _make(dtype: str, category: CategoryDtypeSpec | None) -> FrameType:
    if dtype == "category":
        if category is None:
            raise ValueError("a category feature needs its category_dtype")
        return CategoryType(dtype, category)
    if dtype.startswith("datetime64"):
        return DatetimeType(dtype)
    if dtype in ("bool", "boolean"):
        return BooleanType(dtype)
    if dtype in ("str", "string"):
        return TextType(dtype)
    if dtype.lower().startswith("float"):
        return FloatType(dtype)
    return IntegerType(dtype)


def fitted_type(column: pd.Series, name: str) -> tuple[str, CategoryDtypeSpec | None]:
    """The dtype (and category dtype) of a training column, as a ``FeatureSpec`` records it.

    BadInputError, naming the column and what to do, for a dtype no JSON value maps to
    (timedelta, period, complex, an object column holding other than strings...).
    """
    dtype = column.dtype
    text = str(dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        categories = [_plain(c) for c in dtype.categories.tolist()]
        kinds = {type(c) for c in categories}
        if len(kinds) > 1 or not kinds <= {str, int, float, bool}:
            raise BadInputError(
                f"column {name!r}: a category dtype of {sorted(k.__name__ for k in kinds)} "
                "values has no JSON form; use categories of one type: strings, integers, "
                "numbers or booleans"
            )
        return "category", CategoryDtypeSpec(categories=categories, ordered=bool(dtype.ordered))
    if text == "object":
        others = {type(v).__name__ for v in column.dropna().tolist() if not isinstance(v, str)}
        if others <= {"bool", "bool_"} and others and column.isna().any():
            raise BadInputError(
                f"column {name!r}: True/False with gaps (pd.read_csv gives an object column "
                "of True, False and NaN) has no single JSON form; convert it before fitting: "
                f"frame[{name!r}] = frame[{name!r}].astype('boolean') (a gap is then pd.NA), "
                f"or read it with dtype={{{name!r}: 'boolean'}}"
            )
        if others:
            raise BadInputError(
                f"column {name!r}: an object column holding {', '.join(sorted(others))} values "
                "has no single JSON form; convert it (.astype('str'), 'Int64', 'float64' "
                "or 'boolean') before fitting"
            )
        return text, None
    if _supported(text):
        if pd.api.types.pandas_dtype(text) != dtype:
            raise BadInputError(f"column {name!r}: dtype {dtype!r} cannot be recorded exactly")
        return text, None
    raise BadInputError(
        f"column {name!r}: dtype {text} has no JSON form the bundle can serve; convert it to "
        "numbers, text, booleans, a category or datetime64 before fitting"
    )


def _supported(text: str) -> bool:
    return text not in ("object", "category") and re.match(DTYPE_PATTERN, text) is not None


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON encodes (``np.int64(3)`` -> ``3``)."""
    return value.item() if isinstance(value, np.generic) else value
