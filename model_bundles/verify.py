"""Re-scoring the golden sample: the research outputs a bundle carries must come back exactly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from model_bundles.predict import Outputs
from model_bundles.reference import Reference


class GoldenScorer(Protocol):
    """What the self-check needs of a bundle (``model_bundles.bundle.Bundle`` is one)."""

    @property
    def reference(self) -> Reference: ...

    def predict_events(self, events: Sequence[Mapping[str, Any]]) -> Outputs: ...


# Batch sizes the golden sample is re-scored at: the whole sample, one row at a
# time (the live worker's light-load case) and sizes that leave BLAS remainders.
SELFCHECK_BATCH_SIZES = (0, 1, 2, 3, 7)
MAX_REPORTED = 3


def golden_mismatches(bundle: GoldenScorer) -> list[str]:
    """One line per golden row whose re-scored outputs differ (at any batch size)."""
    golden = bundle.reference.golden
    if not golden:
        return []
    events = [row.event for row in golden]
    problems: list[str] = []
    for size in SELFCHECK_BATCH_SIZES:
        chunk = size or len(events)
        for start in range(0, len(events), chunk):
            outputs = bundle.predict_events(events[start : start + chunk])
            for offset in range(len(outputs)):
                row = golden[start + offset]
                problem = _row_mismatch(row.prediction, row.scores, outputs, offset)
                if problem:
                    problems.append(f"golden row {start + offset} (batch size {chunk}): {problem}")
        if len(problems) >= MAX_REPORTED:
            break
    return problems[:MAX_REPORTED]


def _row_mismatch(
    expected_prediction: Any, expected_scores: list[float] | None, outputs: Any, i: int
) -> str | None:
    got = outputs.predictions[i]
    got = got.item() if isinstance(got, np.generic) else got
    if got != expected_prediction:
        return f"prediction {got!r} != research {expected_prediction!r}"
    if expected_scores is not None:
        got_scores = outputs.scores[i]
        expected = np.asarray(expected_scores, dtype=np.float64)
        if not np.array_equal(got_scores, expected):
            worst = float(np.max(np.abs(got_scores - expected)))
            return f"scores differ from research by up to {worst!r}"
    return None
