"""A model that raises on one event fails that event only (docs/delivery.md, "Model errors").

``BatchScorer`` scores a batch's valid events in one model call. When that call raises,
``isolate`` bisects: each half is scored as it would be alone (its own frame, its own
padded model call, so ``model_bundles.predict``'s batch-size independence holds), and a
half that raises is split again, down to single events. An event that raises alone is a
``model_error`` rejection carrying the exception's type and the first line of its
message (bounded, secret-looking parts masked); every other event's outputs are what
they are in any other batch. A batch with no exception costs nothing more: the first
call is the only one.

``ModelCircuit`` tells an event's fault from the model's (or the environment's): when
every event of a batch raised, the golden sample (held-out events that scored at build
time) is scored; if it raises too, or if every event of ``CIRCUIT_BATCHES`` batches in a
row (``CIRCUIT_EVENTS`` events at least) raised the same exception type, the scorer
raises ``ModelFailure`` (exit 3) instead of sending the whole topic to the dead-letter
topic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_bundles.predict import Outputs
from schemas.errors import RuntimeFailure
from schemas.rejection import Rejection
from schemas.wire_names import RejectReason

MAX_MESSAGE_CHARS = 200
"""Bound on the exception message's first line in headers and detail (Kafka headers are
small; a first line this long already says what failed)."""
CIRCUIT_BATCHES = 3
"""Batches in a row whose every event raised the same exception type: then the fault is
not the events'."""
CIRCUIT_EVENTS = 10
"""...and at least this many events in those batches, so that a few poison events each
alone in its batch (a quiet topic) do not stop the worker."""

_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_SECRET_VALUE = re.compile(
    r"(?i)\b(password|passwd|secret|token|api[_-]?key|credential|authorization)"
    r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"
)


class ModelFailure(RuntimeFailure):
    """The model fails on everything (the golden sample too): the bundle's or the
    environment's fault, not an event's. Exit 3."""


@dataclass(frozen=True, slots=True)
class ModelErrorRejection(Rejection):
    """A ``model_error`` rejection: which exception the pipeline raised on this event."""

    error_type: str = ""
    error_message: str = ""


def describe(exc: BaseException) -> tuple[str, str]:
    """(class name, first line of the message: at most ``MAX_MESSAGE_CHARS`` characters,
    URL credentials and ``password=...``-like values masked as ``***``)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    line = _URL_USERINFO.sub("***@", line)
    line = _SECRET_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}***", line)
    if len(line) > MAX_MESSAGE_CHARS:
        line = line[: MAX_MESSAGE_CHARS - 3] + "..."
    return type(exc).__name__, line


def model_error(exc: BaseException) -> ModelErrorRejection:
    """The rejection of one event the pipeline raised on."""
    name, line = describe(exc)
    detail = f"{name}: {line}" if line else name
    return ModelErrorRejection(RejectReason.MODEL_ERROR, detail, name, line)


@dataclass(slots=True)
class Isolated:
    """Outcome of ``isolate``: ``outputs`` is row-aligned with ``rows`` (ascending)."""

    rows: list[int]
    outputs: Outputs | None
    """None when no row scored."""
    failed: list[tuple[int, Exception]] = field(default_factory=list)
    """(row, exception it raised alone), ascending by row."""


def isolate(
    score_rows: Callable[[Sequence[int]], Outputs], rows: Sequence[int], first: Exception
) -> Isolated:
    """Bisect ``rows`` (whose one call raised ``first``) down to the rows that raise alone.

    ``score_rows(sub)`` scores the sub-batch as it would be scored alone. Model calls:
    about 2 k log2(n / k) for k failing rows of n; a sub-batch that fails only together
    (each half scores) yields every row's outputs and no failure.
    """
    scored: list[tuple[list[int], Outputs]] = []
    failed: list[tuple[int, Exception]] = []

    def visit(part: Sequence[int], error: Exception | None) -> None:
        if error is None:
            try:
                scored.append((list(part), score_rows(part)))
                return
            except Exception as exc:  # the pipeline's own error, whatever its class
                error = exc
        if len(part) == 1:
            failed.append((part[0], error))
            return
        middle = len(part) // 2
        visit(part[:middle], None)
        visit(part[middle:], None)

    visit(rows, first)
    if not scored:
        return Isolated([], None, failed)
    out_rows = [r for part, _ in scored for r in part]
    return Isolated(out_rows, concat_outputs([o for _, o in scored]), failed)


def concat_outputs(parts: Sequence[Outputs]) -> Outputs:
    """Outputs of consecutive sub-batches as one (rows in the order given)."""
    if len(parts) == 1:
        return parts[0]
    predictions = np.concatenate([p.predictions for p in parts])
    scores = None
    if parts[0].scores is not None:
        scores = np.concatenate([p.scores for p in parts if p.scores is not None])
    return Outputs(predictions, scores, decision=parts[0].decision)


class ModelCircuit:
    """The circuit rule of the module docstring, across the batches of one scorer."""

    def __init__(
        self,
        golden: Sequence[Mapping[str, Any]],
        score_golden: Callable[[Sequence[Mapping[str, Any]]], Outputs],
    ) -> None:
        self._golden = list(golden)
        self._score_golden = score_golden
        self._streak_type: str | None = None
        self._streak_batches = 0
        self._streak_events = 0

    def batch_done(self, scored: int, failed: Sequence[tuple[int, Exception]]) -> None:
        """After each batch that reached the model; ModelFailure when the circuit opens."""
        if scored or not failed:
            self._streak_type, self._streak_batches, self._streak_events = None, 0, 0
            return
        self._check_golden(failed[0][1])
        types = {type(exc).__name__ for _, exc in failed}
        kind = types.pop() if len(types) == 1 else None
        if kind is None or kind != self._streak_type:
            self._streak_type, self._streak_batches, self._streak_events = kind, 0, 0
        self._streak_batches += 1
        self._streak_events += len(failed)
        if (
            kind is not None
            and self._streak_batches >= CIRCUIT_BATCHES
            and self._streak_events >= CIRCUIT_EVENTS
        ):
            name, line = describe(failed[-1][1])
            raise ModelFailure(
                f"the model raised {name} on every event of {self._streak_batches} batches "
                f"in a row ({self._streak_events} events), the bundle's or the environment's "
                f"fault, not the events': {name}: {line}"
            )

    def _check_golden(self, seen: Exception) -> None:
        if not self._golden:
            return
        try:
            self._score_golden(self._golden)
        except Exception as exc:  # the bundle fails on its own held-out events
            name, line = describe(exc)
            raise ModelFailure(
                f"the model raised {name} on the golden sample too (the events' "
                f"{type(seen).__name__}), the bundle's or the environment's fault: "
                f"{name}: {line}"
            ) from None
