"""Holdout metrics recorded in the manifest, so two model versions can be compared."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from model_bundles.predict import Outputs
from schemas.manifest import Task


def holdout_metrics(
    task: Task, y_true: np.ndarray[Any, Any], outputs: Outputs, classes: list[Any] | None
) -> dict[str, float]:
    if task == "regression":
        predicted = np.asarray(outputs.predictions, dtype=np.float64)
        return {
            "r2": float(skm.r2_score(y_true, predicted)),
            "mae": float(skm.mean_absolute_error(y_true, predicted)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, predicted))),
        }
    predicted = outputs.predictions
    result = {
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, predicted)),
        "f1_macro": float(skm.f1_score(y_true, predicted, average="macro")),
    }
    if outputs.scores is not None and classes is not None and not outputs.decision:
        result["log_loss"] = float(skm.log_loss(y_true, outputs.scores, labels=classes))
    return result
