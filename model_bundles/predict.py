"""Model outputs that do not depend on batch size.

Facts measured on this project's pipelines make a bare ``predict_proba``
unsafe for a streaming worker:

- a one-row input takes BLAS's matrix-vector path, whose sums differ in the
  last bits from the matrix-matrix path larger batches take (145 of 344
  penguins rows, logistic regression);
- BLAS kernels treat the rows left over after their blocks of 4, 8, 16... rows
  with other code, so a row's last bits can depend on how many rows share its
  call (ridge regression, a matrix-vector product: 39 of 1,960 events differed
  between batches of 1 and of 2,000, none at multiples of 64);
- threaded BLAS/OpenMP may split work differently by batch size.

So every call scores a whole number of ``BLOCK_ROWS``-row blocks, the batch
padded with copies of its first row that are dropped afterwards, and runs with
BLAS and OpenMP limited to one thread (the worker parallelises by partitions).

The load-time self-check re-scores the golden sample at several batch sizes,
so a pipeline for which this is still not enough refuses to load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from threadpoolctl import threadpool_limits

from schemas.manifest import Task


@dataclass(frozen=True, slots=True)
class Outputs:
    """Model outputs for a batch, row-aligned with its input frame."""

    predictions: npt.NDArray[Any]
    """Class labels (classification) or float64 values (regression)."""
    scores: npt.NDArray[np.float64] | None
    """Class probabilities, shape (rows, classes), column order = ``classes``; or, when
    ``decision``, the decision function: shape (rows, 1) for a binary model (the
    positive class, ``classes[1]``), else (rows, classes)."""
    decision: bool = False
    """``scores`` holds decision-function values, not probabilities."""

    def __len__(self) -> int:
        return len(self.predictions)


BLOCK_ROWS = 64
"""A multiple of every BLAS row-block size, so no row is ever a leftover."""

_limiter: threadpool_limits | None = None


def _single_threaded() -> None:
    global _limiter
    if _limiter is None:
        _limiter = threadpool_limits(limits=1)


def _padded(frame: pd.DataFrame) -> pd.DataFrame:
    rows = len(frame)
    missing = -rows % BLOCK_ROWS
    if missing == 0:
        return frame
    filler = frame.iloc[np.zeros(missing, dtype=np.intp)]
    return pd.concat([frame, filler], ignore_index=True)


def predict_outputs(pipeline: Any, frame: pd.DataFrame, task: Task) -> Outputs:
    """Score a frame; identical per row whatever the frame's length."""
    _single_threaded()
    rows = len(frame)
    if rows == 0:
        empty_scores = np.empty((0, 0)) if task == "classification" else None
        return Outputs(np.empty(0, dtype=object), empty_scores)
    padded = _padded(frame)
    if task == "classification":
        return _classify(pipeline, padded, rows)
    values = np.asarray(pipeline.predict(padded), dtype=np.float64)[:rows]
    return Outputs(values, None)


def has_probabilities(pipeline: Any) -> bool:
    """Whether the classifier offers ``predict_proba`` (SVC, LinearSVC, RidgeClassifier...
    do not; they are served with their decision function)."""
    return hasattr(pipeline, "predict_proba")


def _classify(pipeline: Any, padded: pd.DataFrame, rows: int) -> Outputs:
    if has_probabilities(pipeline):
        scores = np.asarray(pipeline.predict_proba(padded), dtype=np.float64)[:rows]
        classes = np.asarray(pipeline.classes_)
        # argmax over the probabilities, as predict() does for every sklearn classifier
        # with predict_proba; computed here once instead of a second model pass.
        return Outputs(classes[np.argmax(scores, axis=1)], scores)
    # predict() itself: a one-vs-one SVC votes, which argmax over its decision need not match
    predictions = np.asarray(pipeline.predict(padded))[:rows]
    if not hasattr(pipeline, "decision_function"):
        return Outputs(predictions, None)
    decision = np.asarray(pipeline.decision_function(padded), dtype=np.float64)[:rows]
    return Outputs(predictions, decision.reshape(rows, -1), decision=True)
