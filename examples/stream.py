"""Demo event streams drawn from the Palmer penguins data, with drift and poison knobs.

Why this exists: the worker's promises (parity, drift metrics, dead letters)
are only visible on a stream that looks like production traffic, can be made
to drift on purpose, and carries known-bad events whose expected reject reason
is known in advance. Everything here is deterministic: the same options give
the same bytes, so a recorded demo stream can be regenerated instead of stored.

Usage (from the repository root)::

    python -m examples.stream [--events N] [--seed S]
        [--drift FEATURE=SHIFT | --drift FEATURE=CATEGORY[@P]]...
        [--poison-rate R] [--allow-large] [--with-species]
        [--start-time ISO] [--rate EVENTS_PER_S]
        [--output FILE] [--labels FILE]

One JSON object per line (JSONL). A valid event is::

    {"event_id": "ev-<seed>-<n>", "island": ..., "bill_length_mm": ...,
     "bill_depth_mm": ..., "flipper_length_mm": ..., "body_mass_g": ..., "sex": ...,
     "ts": <epoch ms>}

``n`` is the 0-based line number, so ids are unique within a stream and across
seeds. A feature missing in the source row is ``null`` (the bundles impute it).
``--with-species`` adds ``"species"`` after ``event_id``: the ``penguins-mass``
bundle (``examples/penguins/config-mass.toml``) uses it as a feature; for the
species bundles it is an extra field and is ignored.

Sampling: rows are drawn with replacement from ``examples/penguins/penguins.csv``
with a seeded ``numpy`` Generator, and gaussian noise is added to the numeric
features (sd: bill length 0.3 mm, bill depth 0.15 mm, flipper 1 mm, mass 40 g),
rounded to 0.1 mm and whole grams. Random numbers come from independent child
streams of ``SeedSequence(seed)`` (row choice, noise, category draws, poison
placement), drawn in fixed-size blocks, so that:

* a stream of N events is a prefix of the stream of M > N events (same seed);
* a numeric drift changes nothing but the drifted feature, a poison rate
  changes nothing but the poisoned lines, and a categorical drift changes only
  the events it redraws.

``ts`` is ``start + floor(n * 1000 / rate)`` milliseconds (defaults:
2025-01-01T00:00:00Z, 100 events/s); an ISO time without an offset is UTC.
Byte-identical output is promised for the same options and the same locked
numpy version (numpy does not promise Generator streams across versions).

Drift (``--drift``, repeatable, one per feature):

* ``bill_length_mm=+6``: numeric features get SHIFT added to every non-null
  value (after noise, before rounding), so the live mean moves by SHIFT while
  the spread stays the same: a plain covariate shift.
* ``island=Dream`` (or ``island=Dream@0.8``): with probability P (default 0.5)
  an event is redrawn from the rows whose ``island`` is ``Dream``. The share of
  Dream goes from about 36 % to about 68 %, and because the whole row follows
  (a population shift, not an inconsistent relabel), the other features and
  the model's predictions drift with it: clearly visible in both
  ``scoring_feature_drift`` and ``scoring_prediction_drift``. ``species`` can be
  drifted the same way (prior shift) even without ``--with-species``. A
  category absent from the data (``island=Anvers``) cannot be redrawn, so it
  is written into the field instead: a new, unknown category. Several
  categorical drifts combine; one that cannot be combined with the others
  (``island=Torgersen`` with ``species=Gentoo``) is written into the field.

Poison (``--poison-rate R``, share of lines, placed at seeded random positions,
kinds taken in turn from :data:`POISON_KINDS`; ``too_large`` only with
``--allow-large``). Each poisoned line is derived from the event it replaces
(same ``event_id`` where it still parses) and has one expected reject reason,
out of band (:func:`generate_labelled_events`, ``--labels``):

==================  ==========================================  ===============
kind                line                                        expected reason
==================  ==========================================  ===============
invalid_json        truncated object / trailing comma           invalid_json
json_array          the event wrapped in ``[...]``              not_an_object
missing_feature     one feature key removed entirely            missing_feature
string_number       ``"bill_depth_mm": "18.1mm"``               wrong_type
nan_literal         raw ``NaN`` as a feature value              non_finite
infinity_literal    raw ``Infinity`` / ``-Infinity``            non_finite
too_large           a valid event padded past 2 MiB             too_large
unknown_category    ``island`` "Anvers" / ``sex`` "UNKNOWN"     (valid)
extra_fields        extra top-level fields, nested too          (valid)
==================  ==========================================  ===============

Poison only ever targets features every example bundle uses (bill length,
bill depth, flipper length, island, sex), so the labels hold for all four
example configs. Note ``NaN``/``Infinity`` are not JSON: a strict parser
rejects them, and the worker is expected to tell them apart as ``non_finite``.
A 2 MiB value is above Kafka's default 1 MB message limit, which is why
``too_large`` is opt-in.
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, NamedTuple, NoReturn, TypeAlias

import numpy as np
import orjson

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
Event: TypeAlias = dict[str, JsonValue]
Cell: TypeAlias = str | float | None

PENGUINS_CSV = Path(__file__).parent / "penguins" / "penguins.csv"

NUMERIC_FEATURES: tuple[str, ...] = (
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("island", "sex")
#: The six features, in the order they appear in an event (the data's column order).
FEATURES: tuple[str, ...] = (
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
)
SPECIES = "species"
#: Columns a categorical drift may force (species: population/prior shift).
DRIFTABLE_CATEGORIES: tuple[str, ...] = (*CATEGORICAL_FEATURES, SPECIES)

NOISE_SD: Mapping[str, float] = {
    "bill_length_mm": 0.3,
    "bill_depth_mm": 0.15,
    "flipper_length_mm": 1.0,
    "body_mass_g": 40.0,
}
DEFAULT_EVENTS = 10_000
DEFAULT_CATEGORY_PROBABILITY = 0.5
DEFAULT_START_TIME = datetime(2025, 1, 1, tzinfo=UTC)
DEFAULT_RATE = 100.0
LARGE_PAYLOAD_BYTES = 2 * 1024 * 1024

#: Reject reasons of SPEC.md ("Dead letter"): the vocabulary of the labels.
REASON_CODES: tuple[str, ...] = (
    "invalid_json",
    "not_an_object",
    "missing_feature",
    "wrong_type",
    "non_finite",
    "too_large",
)
#: Poison kinds, in the order they are cycled through.
POISON_KINDS: tuple[str, ...] = (
    "invalid_json",
    "json_array",
    "missing_feature",
    "string_number",
    "nan_literal",
    "infinity_literal",
    "too_large",
    "unknown_category",
    "extra_fields",
)
#: The reason the worker must give for each kind; ``None``: the event is valid.
EXPECTED_REASON: Mapping[str, str | None] = {
    "invalid_json": "invalid_json",
    "json_array": "not_an_object",
    "missing_feature": "missing_feature",
    "string_number": "wrong_type",
    "nan_literal": "non_finite",
    "infinity_literal": "non_finite",
    "too_large": "too_large",
    "unknown_category": None,
    "extra_fields": None,
}
#: Features poison may damage: used by every example bundle, so labels hold for all.
POISON_FEATURES: tuple[str, ...] = (
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "island",
    "sex",
)
POISON_NUMERIC: tuple[str, ...] = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm")

_BLOCK = 1024  # random numbers are drawn in full blocks so shorter streams are prefixes
_NON_FINITE_MARK = "__examples_stream_non_finite__"


@dataclass(frozen=True)
class Drift:
    """One ``--drift`` knob: a numeric shift, or a forced category with a probability."""

    feature: str
    shift: float = 0.0
    category: str | None = None
    probability: float = DEFAULT_CATEGORY_PROBABILITY


class StreamEvent(NamedTuple):
    """A line with its ground truth, so tests and the demo know what the worker should do."""

    line: bytes
    kind: str | None
    expected_reason: str | None


class _Draw(NamedTuple):
    row_u: float
    noise: tuple[float, float, float, float]
    category_u: tuple[float, float, float]
    poison_u: float


def parse_drift(spec: str) -> Drift:
    """Parse ``FEATURE=SHIFT`` or ``FEATURE=CATEGORY[@P]``; ValueError says what is wrong."""
    feature, sep, value = spec.partition("=")
    feature, value = feature.strip(), value.strip()
    if not sep or not feature or not value:
        raise ValueError(f"drift {spec!r}: expected FEATURE=SHIFT or FEATURE=CATEGORY[@P]")
    if feature in NUMERIC_FEATURES:
        try:
            shift = float(value)
        except ValueError:
            raise ValueError(
                f"drift {spec!r}: {feature} is numeric, SHIFT must be a number"
            ) from None
        if not math.isfinite(shift):
            raise ValueError(f"drift {spec!r}: SHIFT must be finite")
        return Drift(feature, shift=shift)
    if feature in DRIFTABLE_CATEGORIES:
        return _parse_category_drift(spec, feature, value)
    known = ", ".join((*NUMERIC_FEATURES, *DRIFTABLE_CATEGORIES))
    raise ValueError(f"drift {spec!r}: unknown feature {feature!r} (one of {known})")


def _parse_category_drift(spec: str, feature: str, value: str) -> Drift:
    """Split ``CATEGORY[@P]``; kept apart so parse_drift stays readable."""
    category, at, probability_text = value.rpartition("@")
    if not at:
        return Drift(feature, category=value)
    try:
        probability = float(probability_text)
    except ValueError:
        raise ValueError(f"drift {spec!r}: P after '@' must be a number") from None
    if not category.strip() or not 0.0 <= probability <= 1.0:
        raise ValueError(f"drift {spec!r}: expected CATEGORY@P with 0 <= P <= 1")
    return Drift(feature, category=category.strip(), probability=probability)


def parse_start_time(text: str) -> datetime:
    """Parse an ISO 8601 time; a time without an offset is UTC, so output never depends on TZ."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"start time {text!r} is not ISO 8601") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=4)
def load_rows(path: Path = PENGUINS_CSV) -> tuple[Mapping[str, Cell], ...]:
    """Read the penguins CSV once: numbers as float, empty cells as None (missing)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for record in reader:
            row: dict[str, Cell] = {}
            for column in (SPECIES, *FEATURES):
                text = record[column]
                if text == "":
                    row[column] = None
                elif column in NUMERIC_FEATURES:
                    row[column] = float(text)
                else:
                    row[column] = text
            rows.append(row)
    return tuple(rows)


def _draws(seed: int) -> Iterator[_Draw]:
    """Per-event random numbers from independent child streams, drawn in full blocks."""
    rows_ss, noise_ss, category_ss, poison_ss = np.random.SeedSequence(seed).spawn(4)
    rows_rng = np.random.default_rng(rows_ss)
    noise_rng = np.random.default_rng(noise_ss)
    category_rng = np.random.default_rng(category_ss)
    poison_rng = np.random.default_rng(poison_ss)
    while True:
        row_u = rows_rng.random(_BLOCK).tolist()
        noise = noise_rng.standard_normal((_BLOCK, 4)).tolist()
        category_u = category_rng.random((_BLOCK, 3)).tolist()
        poison_u = poison_rng.random(_BLOCK).tolist()
        for i in range(_BLOCK):
            n0, n1, n2, n3 = noise[i]
            c0, c1, c2 = category_u[i]
            yield _Draw(row_u[i], (n0, n1, n2, n3), (c0, c1, c2), poison_u[i])


def _numeric_value(feature: str, raw: Cell, z: float, shift: float) -> float | int | None:
    """Noise + shift, rounded like the source (0.1 mm, whole grams); missing stays missing."""
    if not isinstance(raw, float):
        return None
    value = raw + NOISE_SD[feature] * z + shift
    if feature == "body_mass_g":
        return round(value)
    return round(value, 1)


class _Stream:
    """The validated options and the per-stream caches behind one generated stream."""

    def __init__(
        self,
        seed: int,
        drift: Sequence[Drift],
        *,
        rows: Sequence[Mapping[str, Cell]],
        start_ms: int,
        rate: float,
        with_species: bool,
    ) -> None:
        self.seed = seed
        self.rows = rows
        self.start_ms = start_ms
        self.rate = rate
        self.with_species = with_species
        self.shifts = {d.feature: d.shift for d in drift if d.category is None}
        self.category_drifts = tuple(d for d in drift if d.category is not None)
        self._pools: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[Drift, ...]]] = {}

    def _pool(self, active: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[Drift, ...]]:
        """Rows matching the active category drifts; drifts no row can satisfy are overwritten."""
        cached = self._pools.get(active)
        if cached is not None:
            return cached
        pool = tuple(range(len(self.rows)))
        overwrite: list[Drift] = []
        for index in active:
            drift = self.category_drifts[index]
            narrowed = tuple(r for r in pool if self.rows[r][drift.feature] == drift.category)
            if narrowed:
                pool = narrowed
            else:
                overwrite.append(drift)
        self._pools[active] = (pool, tuple(overwrite))
        return self._pools[active]

    def event(self, n: int, draw: _Draw) -> Event:
        """The valid event for line ``n``: poison, if any, is derived from it afterwards."""
        active = tuple(
            i
            for i, d in enumerate(self.category_drifts)
            if draw.category_u[DRIFTABLE_CATEGORIES.index(d.feature)] < d.probability
        )
        pool, overwrite = self._pool(active)
        row = self.rows[pool[min(int(draw.row_u * len(pool)), len(pool) - 1)]]
        event: Event = {"event_id": f"ev-{self.seed}-{n}"}
        if self.with_species:
            event[SPECIES] = row[SPECIES]
        for feature in FEATURES:
            if feature in NOISE_SD:
                z = draw.noise[NUMERIC_FEATURES.index(feature)]
                shift = self.shifts.get(feature, 0.0)
                event[feature] = _numeric_value(feature, row[feature], z, shift)
            else:
                event[feature] = row[feature]
        for drift in overwrite:
            if drift.feature in event:
                event[drift.feature] = drift.category
        event["ts"] = self.start_ms + math.floor(n * 1000 / self.rate)
        return event


def _dumps(event: Event) -> bytes:
    """Serialize, turning the non-finite marker into the raw ``NaN``/``Infinity`` text."""
    line = orjson.dumps(event)
    for literal in ("NaN", "-Infinity", "Infinity"):
        line = line.replace(orjson.dumps(f"{_NON_FINITE_MARK}{literal}"), literal.encode())
    return line


def _poison_invalid_json(event: Event, occurrence: int) -> bytes:
    """Two everyday breakages: a line cut in half, and a trailing comma."""
    line = _dumps(event)
    return line[: len(line) // 2] if occurrence % 2 == 0 else line[:-1] + b",}"


def _poison_json_array(event: Event, occurrence: int) -> bytes:
    """Valid JSON, wrong shape: a batch-style array holding the event."""
    return b"[" + _dumps(event) + b"]"


def _poison_missing_feature(event: Event, occurrence: int) -> bytes:
    """The key is absent entirely (not null), which SPEC rejects as missing_feature."""
    damaged = dict(event)
    del damaged[POISON_FEATURES[occurrence % len(POISON_FEATURES)]]
    return _dumps(damaged)


def _poison_string_number(event: Event, occurrence: int) -> bytes:
    """A number sent as text with its unit: not coercible even by a lax parser."""
    feature = POISON_NUMERIC[occurrence % len(POISON_NUMERIC)]
    value = event[feature]
    damaged = dict(event)
    damaged[feature] = f"{value if value is not None else 40.0}mm"
    return _dumps(damaged)


def _poison_nan(event: Event, occurrence: int) -> bytes:
    """A raw ``NaN`` token, as emitted by Python's json.dumps or JavaScript-ish producers."""
    damaged = dict(event)
    damaged[POISON_NUMERIC[occurrence % len(POISON_NUMERIC)]] = f"{_NON_FINITE_MARK}NaN"
    return _dumps(damaged)


def _poison_infinity(event: Event, occurrence: int) -> bytes:
    """Raw ``Infinity`` then ``-Infinity``, on a rotating feature."""
    literal = "Infinity" if occurrence % 2 == 0 else "-Infinity"
    damaged = dict(event)
    feature = POISON_NUMERIC[(occurrence // 2) % len(POISON_NUMERIC)]
    damaged[feature] = f"{_NON_FINITE_MARK}{literal}"
    return _dumps(damaged)


def _poison_too_large(event: Event, occurrence: int) -> bytes:
    """An otherwise valid event padded past 2 MiB, so only the size check can reject it."""
    padded = dict(event)
    padded["attachment"] = "x" * LARGE_PAYLOAD_BYTES
    return _dumps(padded)


def _poison_unknown_category(event: Event, occurrence: int) -> bytes:
    """Valid: a category never seen in training (scored, and counted by the worker)."""
    changed = dict(event)
    if occurrence % 2 == 0:
        changed["island"] = "Anvers"
    else:
        changed["sex"] = "UNKNOWN"
    return _dumps(changed)


def _poison_extra_fields(event: Event, occurrence: int) -> bytes:
    """Valid: fields the bundle does not know, of every JSON type, which must be ignored."""
    changed = dict(event)
    changed["year"] = 2007 + occurrence % 3
    changed["observer"] = f"station-{occurrence % 7}"
    changed["tags"] = ["demo", "extra"]
    changed["meta"] = {"source": "examples.stream", "retries": 0, "checked": True}
    return _dumps(changed)


_POISONERS: Mapping[str, Callable[[Event, int], bytes]] = {
    "invalid_json": _poison_invalid_json,
    "json_array": _poison_json_array,
    "missing_feature": _poison_missing_feature,
    "string_number": _poison_string_number,
    "nan_literal": _poison_nan,
    "infinity_literal": _poison_infinity,
    "too_large": _poison_too_large,
    "unknown_category": _poison_unknown_category,
    "extra_fields": _poison_extra_fields,
}


def _validate(n: int, seed: int, drift: Sequence[Drift], poison_rate: float, rate: float) -> None:
    """Reject bad options before the first line, so a CLI never writes half a stream."""
    if n < 0:
        raise ValueError(f"events must be >= 0, got {n}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0.0 <= poison_rate <= 1.0:
        raise ValueError(f"poison rate must be between 0 and 1, got {poison_rate}")
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive number of events per second, got {rate}")
    features = [d.feature for d in drift]
    duplicates = sorted({f for f in features if features.count(f) > 1})
    if duplicates:
        raise ValueError(f"drift given twice for {', '.join(duplicates)}")


def generate_tagged_events(
    n: int,
    seed: int = 0,
    drift: Iterable[Drift] = (),
    poison_rate: float = 0.0,
    *,
    allow_large: bool = False,
    start_time: datetime = DEFAULT_START_TIME,
    rate: float = DEFAULT_RATE,
    with_species: bool = False,
    data: Path = PENGUINS_CSV,
) -> Iterator[StreamEvent]:
    """Generate ``n`` lines with their poison kind and expected reason (None when valid).

    Options are checked now (ValueError), not on the first ``next()``.
    """
    drifts = tuple(drift)
    _validate(n, seed, drifts, poison_rate, rate)
    if start_time.tzinfo is None:
        start_time = start_time.replace(tzinfo=UTC)
    start_ms = (start_time - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    rows = load_rows(data)
    for d in drifts:
        if (
            d.feature == SPECIES
            and not with_species
            and all(r[SPECIES] != d.category for r in rows)
        ):
            raise ValueError(
                f"drift species={d.category}: no such species, and without "
                "--with-species there is no species field to write it into"
            )
    stream = _Stream(
        seed, drifts, rows=rows, start_ms=start_ms, rate=rate, with_species=with_species
    )
    kinds = tuple(k for k in POISON_KINDS if allow_large or k != "too_large")
    return _generate(stream, n, poison_rate, kinds)


def _generate(
    stream: _Stream, n: int, poison_rate: float, kinds: tuple[str, ...]
) -> Iterator[StreamEvent]:
    """The lazy loop behind generate_tagged_events: one draw per line, poison in turn."""
    poisoned = 0
    occurrences = dict.fromkeys(kinds, 0)
    for index, draw in zip(range(n), _draws(stream.seed), strict=False):
        event = stream.event(index, draw)
        if draw.poison_u < poison_rate:
            kind = kinds[poisoned % len(kinds)]
            poisoned += 1
            line = _POISONERS[kind](event, occurrences[kind])
            occurrences[kind] += 1
            yield StreamEvent(line, kind, EXPECTED_REASON[kind])
        else:
            yield StreamEvent(orjson.dumps(event), None, None)


def generate_labelled_events(
    n: int,
    seed: int = 0,
    drift: Iterable[Drift] = (),
    poison_rate: float = 0.0,
    *,
    allow_large: bool = False,
    start_time: datetime = DEFAULT_START_TIME,
    rate: float = DEFAULT_RATE,
    with_species: bool = False,
    data: Path = PENGUINS_CSV,
) -> Iterator[tuple[bytes, str | None]]:
    """Yield ``(line, expected_reason)``: the ground truth for checking dead letters."""
    tagged = generate_tagged_events(
        n,
        seed,
        drift,
        poison_rate,
        allow_large=allow_large,
        start_time=start_time,
        rate=rate,
        with_species=with_species,
        data=data,
    )
    return ((item.line, item.expected_reason) for item in tagged)


def generate_events(
    n: int,
    seed: int = 0,
    drift: Iterable[Drift] = (),
    poison_rate: float = 0.0,
    *,
    allow_large: bool = False,
    start_time: datetime = DEFAULT_START_TIME,
    rate: float = DEFAULT_RATE,
    with_species: bool = False,
    data: Path = PENGUINS_CSV,
) -> Iterator[bytes]:
    """Yield one JSON line per event (no trailing newline), deterministic in the options."""
    tagged = generate_tagged_events(
        n,
        seed,
        drift,
        poison_rate,
        allow_large=allow_large,
        start_time=start_time,
        rate=rate,
        with_species=with_species,
        data=data,
    )
    return (item.line for item in tagged)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (SPEC: one clear line, exit 2)."""

    def error(self, message: str) -> NoReturn:
        """Replace the usage dump with a single line."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    """The CLI's options; the semantics live in the module docstring."""
    parser = _Parser(
        prog="python -m examples.stream",
        description="Generate a deterministic JSONL stream of demo penguin events.",
    )
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, metavar="N")
    parser.add_argument("--seed", type=int, default=0, metavar="S")
    parser.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="FEATURE=SHIFT|FEATURE=CATEGORY[@P]",
        help="numeric: add SHIFT (bill_length_mm=+6); categorical: redraw from CATEGORY "
        "with probability P, default 0.5 (island=Dream); repeatable",
    )
    parser.add_argument("--poison-rate", type=float, default=0.0, metavar="R")
    parser.add_argument(
        "--allow-large", action="store_true", help="include 2 MiB events in the poison"
    )
    parser.add_argument(
        "--with-species", action="store_true", help="add the species field (penguins-mass)"
    )
    parser.add_argument("--start-time", default=None, metavar="ISO")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, metavar="EVENTS_PER_S")
    parser.add_argument("--output", default="-", metavar="FILE", help="default: stdout")
    parser.add_argument(
        "--labels", default=None, metavar="FILE", help="also write each line's kind and reason"
    )
    return parser


def _write(tagged: Iterator[StreamEvent], out: IO[bytes], labels: IO[bytes] | None) -> None:
    """Stream lines (and labels, aligned line for line) without holding them in memory."""
    for index, item in enumerate(tagged):
        out.write(item.line + b"\n")
        if labels is not None:
            label = {"line": index, "kind": item.kind, "expected_reason": item.expected_reason}
            labels.write(orjson.dumps(label) + b"\n")


def _open_outputs(
    stack: ExitStack, output: str, labels: str | None
) -> tuple[IO[bytes], IO[bytes] | None]:
    """Open the output (``-``: stdout) and the optional labels file, closed by ``stack``."""
    # SIM115 cannot see that ExitStack.enter_context is the context manager here.
    out = sys.stdout.buffer if output == "-" else stack.enter_context(open(output, "wb"))  # noqa: SIM115
    label_file = stack.enter_context(open(labels, "wb")) if labels else None  # noqa: SIM115
    return out, label_file


def main(argv: Sequence[str] | None = None) -> int:
    """CLI edge: parse, generate, write; bad options or files give one line and exit 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        try:
            start = parse_start_time(args.start_time) if args.start_time else DEFAULT_START_TIME
            tagged = generate_tagged_events(
                args.events,
                args.seed,
                [parse_drift(spec) for spec in args.drift],
                args.poison_rate,
                allow_large=args.allow_large,
                start_time=start,
                rate=args.rate,
                with_species=args.with_species,
            )
            out, labels = _open_outputs(stack, args.output, args.labels)
        except (ValueError, OSError) as exc:
            parser.error(str(exc))
        try:
            _write(tagged, out, labels)
            out.flush()
        except BrokenPipeError:
            # A reader such as `head` closed the pipe: expected for a generator, not an
            # error. Point stdout at /dev/null so the interpreter's final flush is quiet.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
