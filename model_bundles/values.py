"""What a value means: one canonical form per kind, shared by training data and events.

SPEC.md ("Training data means what it says"): the bundle must see training
values exactly as events will carry them. Every path that turns a value into
model input goes through this module: reading CSV/Parquet/pandas training data
(``model_bundles.data``), the frame built from events (``model_bundles.events``),
reference distributions and drift bins.

- **Categorical** values are text. A string is itself, exactly (``"NA"``,
  ``"007"``, ``" x"``); an integer is its decimal digits (``1`` -> ``"1"``); a
  float that holds an integer is that integer (``1.0`` -> ``"1"``, as an integer
  column with a blank field comes out of pandas); another float is its shortest
  round-trip text; a boolean is ``"True"``/``"False"`` (pandas' spelling, so a
  CSV written by pandas and a Parquet file of the same frame agree).
- An event may carry a categorical value as a JSON integer when the training
  column held integer text, and as a JSON boolean when it held ``"True"`` or
  ``"False"``; it is then compared in the text form above.
- **Numeric** values are float64; text that is not a finite decimal number is
  bad input, never coerced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from schemas.errors import BadInputError
from schemas.manifest import FeatureSpec, category_event_types

Where = Callable[[int], str]
"""Names the position of a row in its source: ``line 7`` (CSV) or ``row 6``."""

_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOOLEAN_TEXT = {True: "True", False: "False"}


def row_number(index: int) -> str:
    """The default ``Where``: 1-based row of a frame."""
    return f"row {index + 1}"


def is_missing(value: Any) -> bool:
    """None, NaN, ``pd.NA`` or ``pd.NaT``: the value is absent."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def category_text(value: Any) -> str | None:
    """The canonical text of a categorical value; None when it is missing."""
    if isinstance(value, str):
        return value
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return _BOOLEAN_TEXT[bool(value)]
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def categorical_array(
    values: Iterable[Any], missing_text: frozenset[str] = frozenset()
) -> npt.NDArray[np.object_]:
    """Canonical texts as an object array, NaN for missing (and for ``missing_text``)."""
    texts = [category_text(v) for v in values]
    column = np.empty(len(texts), dtype=object)
    column[:] = [np.nan if t is None or t in missing_text else t for t in texts]
    return column


def numeric_array(
    column: pd.Series,
    name: str,
    where: Where = row_number,
    missing_text: frozenset[str] = frozenset(),
) -> npt.NDArray[np.float64]:
    """float64 values of a numeric column, NaN for missing (and for ``missing_text``).

    BadInputError naming the column and the first bad row for anything else:
    text that is not a decimal number, booleans, infinities.
    """
    if pd.api.types.is_bool_dtype(column):
        raise BadInputError(f"numeric column {name!r} holds booleans, not numbers")
    if pd.api.types.is_numeric_dtype(column):
        numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        numbers = np.array(
            [math.nan if _listed(v, missing_text) else parse_number(v) for v in column.tolist()],
            dtype=np.float64,
        )
    bad = np.flatnonzero(np.isinf(numbers))
    if len(bad):
        first = int(bad[0])
        raise BadInputError(
            f"numeric column {name!r}, {where(first)}: {column.iloc[first]!r} is not a number"
        )
    return numbers


def _listed(value: Any, texts: frozenset[str]) -> bool:
    return isinstance(value, str) and value in texts


def parse_number(value: Any) -> float:
    """The float of one value; NaN when missing, inf when it is not a finite number."""
    if is_missing(value):
        return math.nan
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value.strip()):
        number = float(value)
    elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    ):
        try:
            number = float(value)
        except OverflowError:
            return math.inf
    else:
        return math.inf
    return number if math.isfinite(number) else math.inf


def float_values(values: Any) -> npt.NDArray[np.float64]:
    """A column (array, ExtensionArray or Series) as float64 for numeric bins, NaN when
    missing: numbers as they are, booleans 0/1, datetimes as seconds since the epoch
    (UTC for a column with a time zone)."""
    if isinstance(values, pd.Series):
        values = values.array
    dtype = getattr(values, "dtype", None)
    if dtype is not None and pd.api.types.is_datetime64_any_dtype(dtype):
        stamps = pd.DatetimeIndex(values)
        if stamps.tz is not None:
            stamps = stamps.tz_convert("UTC").tz_localize(None)
        seconds = stamps.as_unit("ns").asi8.astype(np.float64) / 1e9
        seconds[stamps.isna()] = math.nan
        return seconds
    try:  # the hot path (drift bins of every batch): float64 columns cost nothing here
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):  # e.g. a masked array whose NA numpy cannot cast
        floats: npt.NDArray[np.float64] = pd.array(values).to_numpy(
            dtype=np.float64, na_value=math.nan
        )
        return floats


# --- events ---------------------------------------------------------------------------------

_EVENT_TYPES: dict[int, tuple[FeatureSpec, frozenset[type]]] = {}


def event_types(feature: FeatureSpec) -> frozenset[type]:
    """JSON value types an event may give this categorical feature (besides null).

    ``schemas.manifest.category_event_types`` of its categories, cached per feature
    object (the hot path asks once per event holding a non-string value).
    """
    cached = _EVENT_TYPES.get(id(feature))
    if cached is not None and cached[0] is feature:
        return cached[1]
    types = category_event_types(feature.categories or ())
    if len(_EVENT_TYPES) > 4096:
        _EVENT_TYPES.clear()
    _EVENT_TYPES[id(feature)] = (feature, types)
    return types
