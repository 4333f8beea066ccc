"""Compare two prediction files by event id: the research/live parity check. No I/O here.

"Same output" means bit for bit: the same prediction (floats compared by their
bits) and the same scores, label by label. ``source`` and ``model`` are not
compared (research records have no source; comparing two bundles is the point
of model comparison), but the models on each side are reported.

Either side may be a prediction file (``score``, ``replay --output``) or a
recording of a prediction topic (``record``): a recording line is unwrapped to
the prediction record in its value, decoded from Avro (``--output-format avro``) with
the writer schemas the recording kept.

Repeated ids (one event id twice on a side) are counted and reported, and
paired in order: the n-th copy on one side is compared with the n-th on the
other, so identical id-less events (whose ids derive from their bytes) pair up.
An expected copy without an actual one is missing; actual copies beyond the
expected ones (redeliveries) must equal the last expected copy. ``ParityChecker`` is incremental, so
replay can count comparisons batch by batch (``scoring_parity_*`` metrics).
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.errors import BadInputError
from schemas.rejection import Rejection
from worker.core.formats import ValueFormat, WireDecoder, schema_id_of
from worker.core.record_avro import json_form
from worker.core.recording import (
    is_envelope,
    is_schema_line,
    message_from_envelope,
    schema_from_line,
)

Label = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Outputs:
    """What parity compares of one prediction record, and the model that made it."""

    prediction: Label
    scores: dict[str, float] | None
    model: str


@dataclass(slots=True)
class Diff:
    """Largest and summed absolute differences of one output over matched events."""

    max_abs: float = 0.0
    sum_abs: float = 0.0
    count: int = 0

    def add(self, a: float, b: float) -> None:
        d = abs(a - b)
        if math.isnan(d):
            d = 0.0 if _same(a, b) else math.inf
        self.max_abs = max(self.max_abs, d)
        self.sum_abs += d
        self.count += 1

    @property
    def mean_abs(self) -> float:
        return self.sum_abs / self.count if self.count else 0.0


@dataclass(frozen=True, slots=True)
class Mismatch:
    event_id: str
    expected: Outputs
    actual: Outputs


@dataclass(slots=True)
class Side:
    """What one file held."""

    name: str
    records: int = 0
    duplicates: int = 0
    """Records whose event id appeared earlier in the same file."""
    conflicting: int = 0
    """Duplicates whose outputs differ from the first copy (expected side only; reported,
    not a failure: copies are paired in order)."""
    models: Counter[str] = field(default_factory=Counter)
    predictions: Counter[str] = field(default_factory=Counter)
    ids: list[str] = field(default_factory=list)
    """A few of its event ids (the first ones read), to explain ids that do not join."""
    repeated_ids: list[str] = field(default_factory=list)
    """A few of the event ids it holds more than once."""


@dataclass(slots=True)
class ParityResult:
    expected: Side
    actual: Side
    matched: int = 0
    """Pairs of records (the n-th copy of an id on each side) present on both sides."""
    mismatched: int = 0
    """Matched pairs with any differing output (or a differing redelivered copy)."""
    agreed: int = 0
    """Matched pairs with the same prediction (label, or regression value)."""
    missing_in_actual: list[str] = field(default_factory=list)
    missing_in_expected: list[str] = field(default_factory=list)
    score_diff: dict[str, Diff] = field(default_factory=dict)
    prediction_diff: Diff | None = None
    label_changes: Counter[tuple[str, str]] = field(default_factory=Counter)
    first_mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def identical(self) -> int:
        return self.matched - self.mismatched

    @property
    def agreement_rate(self) -> float | None:
        return self.agreed / self.matched if self.matched else None

    @property
    def ok(self) -> bool:
        return not (self.mismatched or self.missing_in_actual or self.missing_in_expected)


class ParityChecker:
    """Holds the expected outputs by event id; actual records are fed in as they come.

    Copies of one event id are paired in order: the n-th actual record with an id
    is compared with the n-th expected record with it (identical events without an
    id field share the id derived from their bytes). Actual copies beyond the
    expected ones (redeliveries) are compared with the last expected copy.
    """

    def __init__(self, expected_name: str, actual_name: str, max_listed: int = 10) -> None:
        self.max_listed = max_listed
        self._expected: dict[str, Outputs] = {}
        self._more: dict[str, list[Outputs]] = {}  # expected copies after the first, in order
        self._seen: dict[str, int] = {}  # actual event id -> copies seen
        self._failed: set[tuple[str, int]] = set()  # (id, copy) pairs that mismatched
        self.result = ParityResult(Side(expected_name), Side(actual_name))

    def add_expected(self, lines: Iterable[bytes]) -> None:
        side = self.result.expected
        for event_id, outputs in parse_predictions(lines, side.name):
            _count(side, outputs)
            first = self._expected.get(event_id)
            if first is None:
                self._expected[event_id] = outputs
                _note_id(side.ids, event_id)
                continue
            side.duplicates += 1
            _note_id(side.repeated_ids, event_id)
            self._more.setdefault(event_id, []).append(outputs)
            if not _same_outputs(first, outputs):
                side.conflicting += 1

    def add_actual(self, lines: Iterable[bytes]) -> tuple[int, int]:
        """Compare actual records; returns (compared, mismatched) among them."""
        compared = mismatched = 0
        for event_id, outputs in parse_predictions(lines, self.result.actual.name):
            outcome = self._compare(event_id, outputs)
            if outcome is not None:
                compared += 1
                mismatched += int(not outcome)
        return compared, mismatched

    def _copies(self, event_id: str) -> int:
        return (event_id in self._expected) + len(self._more.get(event_id, ()))

    def _compare(self, event_id: str, outputs: Outputs) -> bool | None:
        """True when equal to the paired expected outputs, None when nothing is expected."""
        side, result = self.result.actual, self.result
        _count(side, outputs)
        copy = self._seen.get(event_id, 0)
        self._seen[event_id] = copy + 1
        if copy:
            side.duplicates += 1
            _note_id(side.repeated_ids, event_id)
        else:
            _note_id(side.ids, event_id)
        copies = self._copies(event_id)
        if not copies:
            return None
        pair = min(copy, copies - 1)
        expected = self._expected[event_id] if pair == 0 else self._more[event_id][pair - 1]
        same = _same_outputs(expected, outputs)
        if copy < copies:
            result.matched += 1
            self._measure(expected, outputs)
        if not same and (event_id, pair) not in self._failed:
            self._failed.add((event_id, pair))
            result.mismatched += 1
            if len(result.first_mismatches) < self.max_listed:
                result.first_mismatches.append(Mismatch(event_id, expected, outputs))
        return same

    def _measure(self, expected: Outputs, actual: Outputs) -> None:
        result = self.result
        a, b = expected.prediction, actual.prediction
        if _same(a, b):
            result.agreed += 1
        if isinstance(a, float) or isinstance(b, float):  # a regression value
            if _is_number(a) and _is_number(b):
                result.prediction_diff = result.prediction_diff or Diff()
                result.prediction_diff.add(float(a), float(b))
        elif not _same(a, b):
            result.label_changes[(str(a), str(b))] += 1
        for label in sorted(set(expected.scores or {}) & set(actual.scores or {})):
            diff = result.score_diff.setdefault(label, Diff())
            diff.add((expected.scores or {})[label], (actual.scores or {})[label])

    def finish(self) -> ParityResult:
        """The result, with the ids missing on either side (sorted, once per missing copy)."""
        result = self.result
        result.missing_in_actual = sorted(
            event_id
            for event_id in self._expected
            for _ in range(self._copies(event_id) - self._seen.get(event_id, 0))
        )
        result.missing_in_expected = sorted(set(self._seen) - set(self._expected))
        result.score_diff = dict(sorted(result.score_diff.items()))
        return result


def _note_id(kept: list[str], event_id: str, most: int = 3) -> None:
    if len(kept) < most and event_id not in kept:
        kept.append(event_id)


def compare(
    expected: Iterable[bytes],
    actual: Iterable[bytes],
    names: tuple[str, str] = ("expected", "actual"),
    max_listed: int = 10,
) -> ParityResult:
    checker = ParityChecker(*names, max_listed=max_listed)
    checker.add_expected(expected)
    checker.add_actual(actual)
    return checker.finish()


def parse_predictions(lines: Iterable[bytes], source: str) -> Iterator[tuple[str, Outputs]]:
    """(event id, outputs) of every prediction line; BadInputError naming file:line.

    A recording of an Avro prediction topic (``record --value-format avro``) holds the
    writer schemas it saw: its records are decoded with them and compared in their JSON
    form (``worker.core.record_avro.json_form``), the same float64 values."""
    avro = WireDecoder(ValueFormat.AVRO)
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n")
        if line.strip():
            where = f"{source}:{number}"
            item = _loads(line, where)
            if is_schema_line(item):
                avro.learn(schema_from_line(item, where))
                continue
            yield parse_prediction(item, where, avro)


def parse_prediction(item: Any, where: str, avro: WireDecoder) -> tuple[str, Outputs]:
    """One decoded line: a prediction record, or a recording envelope holding one."""
    if is_envelope(item):  # a recording of a prediction topic
        value = message_from_envelope(item, where).value or b"null"
        item = _record_in(value, where, avro)
    if not isinstance(item, dict) or not isinstance(item.get("event_id"), str):
        raise BadInputError(f"{where}: not a prediction record (no string event_id)")
    prediction = item.get("prediction")
    # a decision-function classifier's record carries "decision" where others carry "scores"
    scores = item.get("scores") if "scores" in item else item.get("decision")
    if not isinstance(prediction, str | int | float | bool):
        raise BadInputError(f"{where}: prediction must be a label or a number")
    if scores is not None and not _is_scores(scores):
        raise BadInputError(f"{where}: scores must map labels to numbers")
    return item["event_id"], Outputs(prediction, scores, _model_name(item.get("model")))


def _record_in(value: bytes, where: str, avro: WireDecoder) -> Any:
    """A recorded value: JSON text, or an Avro record in the wire format (JSON never
    starts with byte 0)."""
    if schema_id_of(value) is None:
        return _loads(value, f"{where}: value")
    decoded = avro.decode(value)
    if isinstance(decoded, Rejection):
        raise BadInputError(
            f"{where}: value: {decoded.detail} (an Avro prediction topic: record it with "
            "--value-format avro --schema-registry-url URL, which keeps its writer schemas)"
        )
    return json_form(decoded)


def _loads(line: bytes, where: str) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"{where}: not valid JSON: {exc}") from None


def _is_scores(scores: Any) -> bool:
    return isinstance(scores, dict) and all(_is_number(v) for v in scores.values())


def _model_name(model: Any) -> str:
    if isinstance(model, dict):
        return " ".join(str(model.get(k, "?")) for k in ("name", "version", "digest"))
    return "?"


def _count(side: Side, outputs: Outputs) -> None:
    side.records += 1
    side.models[outputs.model] += 1
    if not isinstance(outputs.prediction, float):
        side.predictions[str(outputs.prediction)] += 1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equal, with floats compared by their bits (so 0.0 != -0.0 and NaN == NaN)."""
    if _is_number(a) and _is_number(b) and (isinstance(a, float) or isinstance(b, float)):
        return struct.pack("<d", float(a)) == struct.pack("<d", float(b))
    return type(a) is type(b) and bool(a == b)


def _same_outputs(a: Outputs, b: Outputs) -> bool:
    if not _same(a.prediction, b.prediction):
        return False
    if a.scores is None or b.scores is None:
        return a.scores is None and b.scores is None
    return a.scores.keys() == b.scores.keys() and all(
        _same(v, b.scores[k]) for k, v in a.scores.items()
    )
