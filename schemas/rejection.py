"""Why one event cannot be scored: a reason from the wire names and its detail.

Its own module, light to import: `record`, `publish` and `parity` decode and compare
events without importing the scoring stack (pandas, scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.wire_names import RejectReason


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one event cannot be scored (``reason`` goes on its dead letter)."""

    reason: RejectReason
    detail: str
