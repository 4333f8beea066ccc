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


SELFCHECK_PLAN: tuple[tuple[int, int], ...] = ((0, 0), (1, 3), (7, 7))
"""(batch size, rows covered; 0 = all) the golden sample is re-scored at: every row as
one batch, the first rows one at a time (the live worker's light-load case) and as one
batch of an odd size (a BLAS remainder). Each call costs the model's fixed overhead
(~10 ms for a 100-tree forest), so every row at every size cost seconds at start-up;
scoring is row-independent by construction (``model_bundles.predict`` pads to whole
BLAS blocks), and a few rows at each size prove that as well as all of them."""
MAX_REPORTED = 3


def describe_plan(rows: int) -> str:
    """``69 rows at full size, the first 3 one at a time, the first 7 as one batch``."""
    single, odd = SELFCHECK_PLAN[1][1], SELFCHECK_PLAN[2][1]
    return (
        f"{rows} rows at full size, the first {min(single, rows)} one at a time, "
        f"the first {min(odd, rows)} as one batch"
    )


def golden_mismatches(bundle: GoldenScorer) -> list[str]:
    """One line per golden row whose re-scored outputs differ (at any size of the plan)."""
    golden = bundle.reference.golden
    if not golden:
        return []
    events = [row.event for row in golden]
    problems: list[str] = []
    for size, covered in SELFCHECK_PLAN:
        rows = events[: covered or len(events)]
        chunk = size or len(rows)
        for start in range(0, len(rows), chunk):
            outputs = bundle.predict_events(rows[start : start + chunk])
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
