"""What research computed for a bundle: reference distributions of its outputs, golden rows,
and the estimator's description."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from model_bundles.events import normalize_frame
from model_bundles.params import json_safe, params_of
from model_bundles.predict import Outputs, predict_outputs
from model_bundles.reference import (
    MAX_CATEGORY_BINS,
    CategoricalReference,
    GoldenRow,
    NumericReference,
    categorical_reference,
    numeric_reference,
)
from model_bundles.values import category_text
from schemas.manifest import FeatureSpec, Task

MIN_REFERENCE_ROWS = 500


def reference_outputs(
    pipeline: Any,
    train: pd.DataFrame,
    holdout: pd.DataFrame | None,
    specs: Sequence[FeatureSpec],
    task: Task,
    holdout_outputs: Outputs,
) -> Outputs:
    """Research predictions the live distribution is compared with.

    The holdout when it is large enough; else every labelled row, because decile
    bins over a few dozen predictions give drift a noise floor near the alert
    threshold (measured: PSI ~0.13 for an undrifted stream against 69 rows).
    """
    if holdout is not None and len(holdout) >= MIN_REFERENCE_ROWS:
        return holdout_outputs
    frames = [normalize_frame(f, specs) for f in (train, holdout) if f is not None]
    return predict_outputs(pipeline, pd.concat(frames, ignore_index=True), task)


def golden_rows(events: list[dict[str, Any]], outputs: Outputs) -> list[GoldenRow]:
    """Each golden event with its exact outputs (probabilities or decision values)."""
    rows = []
    for i, event in enumerate(events):
        scores = None if outputs.scores is None else [float(s) for s in outputs.scores[i]]
        rows.append(GoldenRow(event=event, prediction=plain(outputs.predictions[i]), scores=scores))
    return rows


def prediction_reference(
    outputs: Outputs, classes: list[Any] | None
) -> NumericReference | CategoricalReference:
    """Value bins (regression) or the share of each predicted label (classification)."""
    if classes is None:
        return numeric_reference(np.asarray(outputs.predictions, dtype=np.float64))
    labels = [category_text(p) for p in outputs.predictions]
    return categorical_reference(labels, [str(category_text(c)) for c in classes])


def class_score_references(
    outputs: Outputs, classes: list[Any] | None
) -> dict[str, NumericReference] | None:
    """Per class, its probability's distribution; None without probabilities (drift of a
    decision-function classifier uses its predicted labels). With more than
    ``MAX_CATEGORY_BINS`` classes, only the most often predicted ones (ties in class
    order): each class is a dozen series per replica."""
    if classes is None or outputs.scores is None or outputs.decision:
        return None
    labels = [str(category_text(c)) for c in classes]
    kept: list[int] = list(range(len(labels)))
    if len(labels) > MAX_CATEGORY_BINS:
        predicted = pd.Series([category_text(p) for p in outputs.predictions], dtype=object)
        counts = predicted.value_counts()
        shares = np.asarray([-float(counts.get(c, 0)) for c in labels])
        kept = sorted(np.argsort(shares, kind="stable")[:MAX_CATEGORY_BINS].tolist())
    return {labels[i]: numeric_reference(outputs.scores[:, i]) for i in kept}


def estimator_spec(pipeline: Any, estimator_name: str) -> dict[str, Any]:
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    return {
        "name": estimator_name,
        "class_path": f"{type(final).__module__}.{type(final).__qualname__}",
        "params": params_of(final, deep=False),
        "pipeline_params": params_of(pipeline, deep=True),
    }


def plain(value: Any) -> Any:
    return json_safe(value.item() if isinstance(value, np.generic) else value)
