"""`evaluate`'s metrics: scikit-learn's, per task, with the way each one improves.

Classification: accuracy, log loss, Brier score (``brier_score_loss``: the positive
label's for two labels, summed over labels for more) and ROC AUC (one-vs-rest macro
average for more than two labels; it needs labels of every class). Regression: MAE,
RMSE and R². Labels arrive as integer positions in the models' classes
(``worker.evaluate.inputs.Joined``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from schemas.errors import BadInputError
from worker.evaluate.inputs import Task

Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray | None, list[Any]], float]
PerEvent = Callable[[np.ndarray, np.ndarray, np.ndarray | None, list[Any]], np.ndarray]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    higher_is_better: bool
    compute: Scorer
    """(labels, predicted, scores or None, classes) -> value, by scikit-learn."""
    per_event: PerEvent | None = None
    """For a metric that is a mean (or its root) of per-event losses: those losses, so a
    resample's value is an average of them rather than a scikit-learn call per resample.
    The tests check that their mean equals ``compute`` on every model."""
    root: bool = False
    needs_every_class: bool = False
    """Undefined on a sample that lacks a class (ROC AUC): resampled within each class
    (``worker.evaluate.stats``, the stratified bootstrap)."""


def _roc_auc(y: np.ndarray, _pred: np.ndarray, p: np.ndarray | None, classes: list[Any]) -> float:
    assert p is not None
    if len(classes) == 2:
        return float(roc_auc_score(y == classes[1], p[:, 1]))
    return float(roc_auc_score(y, p, multi_class="ovr", labels=classes))


def _brier(y: np.ndarray, _pred: np.ndarray, p: np.ndarray | None, classes: list[Any]) -> float:
    assert p is not None
    if len(classes) == 2:
        return float(brier_score_loss(y, p[:, 1], pos_label=classes[1]))
    return float(brier_score_loss(y, p, labels=classes))


def _one_hot(y: np.ndarray, classes: list[Any]) -> np.ndarray:
    return np.asarray(y[:, None] == np.array(classes)[None, :], dtype=np.float64)


def _brier_each(y: np.ndarray, _pred: np.ndarray, p: np.ndarray | None, c: list[Any]) -> np.ndarray:
    """Squared error of the probabilities: the positive label's only when there are two."""
    assert p is not None
    if len(c) == 2:
        return np.asarray((p[:, 1] - (y == c[1])) ** 2, dtype=np.float64)
    return np.asarray(((p - _one_hot(y, c)) ** 2).sum(axis=1), dtype=np.float64)


def _log_loss_each(
    y: np.ndarray, _pred: np.ndarray, p: np.ndarray | None, c: list[Any]
) -> np.ndarray:
    """Minus the log of the true label's probability, clipped like scikit-learn (dtype eps)."""
    assert p is not None
    eps = np.finfo(p.dtype).eps
    true = (np.clip(p, eps, 1 - eps) * _one_hot(y, c)).sum(axis=1)
    return np.asarray(-np.log(true), dtype=np.float64)


METRICS: dict[Task, tuple[Metric, ...]] = {
    "classification": (
        Metric(
            "accuracy",
            True,
            lambda y, pred, _p, _c: float(accuracy_score(y, pred)),
            lambda y, pred, _p, _c: np.asarray(y == pred, dtype=np.float64),
        ),
        Metric(
            "log_loss",
            False,
            lambda y, _pred, p, c: float(log_loss(y, p, labels=c)),
            _log_loss_each,
        ),
        Metric("brier", False, _brier, _brier_each),
        Metric("roc_auc", True, _roc_auc, needs_every_class=True),
    ),
    "regression": (
        Metric(
            "mae",
            False,
            lambda y, pred, _p, _c: float(mean_absolute_error(y, pred)),
            lambda y, pred, _p, _c: np.abs(y - pred),
        ),
        Metric(
            "rmse",
            False,
            lambda y, pred, _p, _c: float(root_mean_squared_error(y, pred)),
            lambda y, pred, _p, _c: (y - pred) ** 2,
            root=True,
        ),
        Metric("r2", True, lambda y, pred, _p, _c: float(r2_score(y, pred))),
    ),
}


def metrics_for(task: Task, names: list[str] | None = None) -> list[Metric]:
    """The task's metrics, or the ones named (BadInputError for a name the task lacks)."""
    known = {m.name: m for m in METRICS[task]}
    if not names:
        return list(known.values())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadInputError(f"metric {unknown[0]} is not a {task} metric ({', '.join(known)})")
    return [known[n] for n in dict.fromkeys(names)]
