"""Reading training data, and the fingerprint that identifies it."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from model_bundles.values import Where, row_number
from schemas.errors import BadInputError


def read_data(path: Path, na_values: Sequence[str] = ()) -> pd.DataFrame:
    """CSV or Parquet, by suffix; any problem is one BadInputError line.

    CSV fields are read as text exactly as written: only an empty field (and a
    field equal to one of ``na_values``) is missing; which columns are numbers is
    the config's to say (``model_bundles.training``). Parquet columns keep their
    types, integers with nulls included (pandas' nullable dtypes, never float).
    """
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".parquet", ".pq"}:
        raise BadInputError(f"data file {path}: expected .csv or .parquet")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=["", *na_values])
        else:
            frame = pd.read_parquet(path, dtype_backend="numpy_nullable")
    except FileNotFoundError:
        raise BadInputError(f"data file not found: {path}") from None
    except pd.errors.EmptyDataError:
        raise BadInputError(f"data file {path} is empty") from None
    except Exception as exc:  # parsers raise many types; the user needs one line
        raise BadInputError(f"cannot read data file {path}: {exc}") from None
    if frame.empty:
        raise BadInputError(f"data file {path} has no rows")
    return frame


def csv_line(index: int) -> str:
    """Where row ``index`` of a CSV file is: its header is line 1 (fields spanning lines aside)."""
    return f"line {index + 2}"


def rows_of(path: Path) -> Where:
    """How errors name a row of this data file: ``line N`` for CSV, ``row N`` for Parquet."""
    return csv_line if path.suffix.lower() == ".csv" else row_number


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of a canonical JSON-lines form: the header, then each row, nulls as null.

    Independent of the file format and of pandas' dtype choices: the same values
    in the same order give the same fingerprint from CSV or Parquet.
    """
    digest = hashlib.sha256()
    digest.update(orjson.dumps([str(c) for c in frame.columns]) + b"\n")
    for row in frame.itertuples(index=False, name=None):
        digest.update(orjson.dumps([_canonical(v) for v in row]) + b"\n")
    return digest.hexdigest()


def _canonical(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)
