"""Training data as the bundle sees it: canonical columns, typed labels, a split that can fit.

``prepare`` turns a frame as read (every CSV field text; Parquet or pandas
columns typed) into the columns the bundle uses, each in its canonical form
(``model_bundles.values``), and refuses (BadInputError, exit 2, one line naming
the column) what cannot be trained on as configured: the id column as a
feature, a value that is not of its column's kind, a single-class target, too
few labelled rows for the split.

Labels keep their type: a target whose values are all integers (or integer
text, as in CSV) gives integer classes; all ``True``/``False`` gives boolean
classes; any other target is text. Regression targets are float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import train_test_split

from model_bundles.config import TrainingConfig
from model_bundles.estimators import ESTIMATORS
from model_bundles.values import (
    Where,
    categorical_array,
    category_text,
    is_missing,
    numeric_array,
    parse_number,
    row_number,
)
from schemas.errors import BadInputError
from schemas.manifest import Task, is_integer_text

_INT64 = np.iinfo(np.int64)


@dataclass(frozen=True)
class TrainingData:
    """The used columns of every row (``rows``) and of the labelled ones, and the task."""

    rows: pd.DataFrame
    """Id, features and target of every row, canonical (the data fingerprint's input)."""
    labelled: pd.DataFrame
    """The rows with a target, the target as typed labels (or float64 values)."""
    task: Task


def prepare(config: TrainingConfig, frame: pd.DataFrame, where: Where = row_number) -> TrainingData:
    """Canonical columns and typed labels; BadInputError (one line) for what cannot train."""
    numeric, categorical = config.features.numeric, config.features.categorical
    target, id_column = config.data.target, config.data.id_column
    refuse_id_feature(id_column, [*numeric, *categorical])
    missing = frozenset({"", *config.data.na_values})
    columns: dict[str, Any] = {}
    if id_column is not None:
        columns[id_column] = categorical_array(frame[id_column].tolist(), missing)
    for name in numeric:
        columns[name] = numeric_array(frame[name], name, where, missing)
    for name in categorical:
        columns[name] = categorical_array(frame[name].tolist(), missing)
    raw_target = _target_cells(frame[target], missing)
    task = config.model.task or infer_task(raw_target, config.model.estimator)
    if task == "regression":
        columns[target] = numeric_array(raw_target, target, where)
    else:  # text here, so that CSV and Parquet of one table have one fingerprint
        columns[target] = categorical_array(raw_target.tolist())
    rows = pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))
    labelled = rows[rows[target].notna()].reset_index(drop=True)
    if task == "classification":
        labelled[target] = class_labels(labelled[target].tolist())
        _require_two_classes(labelled[target], target)
    return TrainingData(rows=rows, labelled=labelled, task=task)


def refuse_id_feature(id_column: str | None, features: Sequence[str]) -> None:
    """SPEC: the id column can never be a feature (BadInputError naming it)."""
    if id_column is not None and id_column in features:
        raise BadInputError(f"id column {id_column!r} is listed as a feature; an id never is one")


def _target_cells(column: pd.Series, missing: frozenset[str]) -> pd.Series:
    cells = np.empty(len(column), dtype=object)
    cells[:] = [
        np.nan if is_missing(v) or (isinstance(v, str) and v in missing) else _plain(v)
        for v in column.tolist()
    ]
    return pd.Series(cells, index=pd.RangeIndex(len(column)), dtype=object)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def infer_task(target: pd.Series, estimator: str) -> Task:
    """The config's estimator when it does only one task; else numbers mean regression.

    Numbers are numeric values or decimal text (CSV); anything else (text,
    booleans) is a label.
    """
    classifier, regressor = ESTIMATORS.get(estimator, (None, None))
    if (classifier is None) != (regressor is None):
        return "classification" if classifier is not None else "regression"
    present = [v for v in target.tolist() if not is_missing(v)]
    numbers = all(_is_number(v) for v in present)
    return "regression" if present and numbers else "classification"


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and not math.isinf(parse_number(value))


def class_labels(values: Sequence[Any]) -> pd.Series:
    """Typed class labels: integers, booleans, or text (see the module docstring)."""
    texts = [category_text(v) for v in values]
    if texts and all(t in ("True", "False") for t in texts):
        return pd.Series([t == "True" for t in texts], dtype=bool)
    if texts and all(t is not None and is_integer_text(t) for t in texts):
        integers = [int(t) for t in texts if t is not None]
        if _INT64.min <= min(integers) and max(integers) <= _INT64.max:
            return pd.Series(integers, dtype=np.int64)
    return pd.Series(texts, dtype=object)


def label_array(y: pd.Series, task: Task) -> npt.NDArray[Any]:
    """Targets as scikit-learn takes them: float64 values, or labels of one plain dtype.

    An object array of integers is "unknown" to scikit-learn, so integer labels
    go as int64, booleans as bool, floats as float64, anything else as object.
    """
    if task == "regression":
        return y.to_numpy(dtype=np.float64)
    values = [_plain(v) for v in y.tolist()]
    kinds = set(map(type, values))
    if kinds <= {bool}:
        return np.array(values, dtype=bool)
    if kinds <= {int} and values and _INT64.min <= min(values) and max(values) <= _INT64.max:
        return np.array(values, dtype=np.int64)
    if kinds <= {int, float}:
        return np.array(values, dtype=np.float64)
    return np.array(values, dtype=object)


def _require_two_classes(labels: pd.Series, target: str) -> None:
    classes = labels.unique().tolist()
    if not classes:
        raise BadInputError(f"target {target!r} has no labelled rows")
    if len(classes) < 2:
        raise BadInputError(
            f"target {target!r} has 1 class ({classes[0]!r}) in {len(labels)} labelled rows; "
            "classification needs at least two"
        )


def split(
    labelled: pd.DataFrame, target: str, task: Task, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``train_test_split``, stratified for classification when every class has 2 rows.

    BadInputError naming the target when the labelled rows are too few: either
    side empty, or (classification) a side with fewer rows than classes, or a
    training side left with a single class.
    """
    rows = len(labelled)
    holdout_rows = math.ceil(test_size * rows)
    train_rows = rows - holdout_rows
    classes = labelled[target].nunique() if task == "classification" else 1
    stratify = None
    if task == "classification" and labelled[target].value_counts().min() >= 2:
        stratify = label_array(labelled[target], task)
    need = classes if stratify is not None else 1
    if min(holdout_rows, train_rows) < need:
        raise BadInputError(_too_few(target, rows, test_size, holdout_rows, train_rows, need))
    train, holdout = train_test_split(
        labelled, test_size=test_size, random_state=seed, stratify=stratify
    )
    if task == "classification" and train[target].nunique() < 2:
        raise BadInputError(_too_few(target, rows, test_size, holdout_rows, train_rows, classes))
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def _too_few(target: str, rows: int, test_size: float, holdout: int, train: int, need: int) -> str:
    return (
        f"target {target!r}: {rows} labelled rows are too few for test_size {test_size}: "
        f"the split gives {train} training and {holdout} holdout rows, and each side needs "
        f"at least {need}" + (" (one per class)" if need > 1 else "")
    )
