"""``bundle check``: a bundle's features against a sample of the live topic, before deploying.

Reads a recording (``scoring-worker record``) or a plain JSONL events file and
reports, per feature, how often it is present, absent or null, how often its
value does not fit the fitted type (``wrong_type``/``non_finite``, the
worker's own check), how often a categorical value was never seen in
training; and the share of events the worker would send to the dead-letter
topic (the serving path itself: ``BatchScorer``, by reason).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from model_bundles.bundle import Bundle
from model_bundles.events import check_event
from model_bundles.values import category_text
from schemas.errors import BadInputError
from schemas.manifest import FeatureSpec
from worker.core.counts import counted
from worker.core.events import InputEvent
from worker.core.formats import WireDecoder, WriterSchema
from worker.core.recording import PublishOptions, read_publishable, read_recording_items
from worker.core.scoring import BatchScorer

MOSTLY_ABSENT = 0.5
"""A feature absent from more than this share of the events makes the check fail."""
BATCH = 1000


@dataclass
class FeatureCounts:
    """What the sample carries for one feature (counts over the events that are objects;
    ``unknown`` over the present values of the right type)."""

    feature: FeatureSpec
    present: int = 0
    absent: int = 0
    null: int = 0
    mismatched: Counter[str] = field(default_factory=Counter)
    unknown: int = 0

    def add(self, event: dict[str, Any]) -> None:
        name = self.feature.name
        if name not in event:
            self.absent += 1
            return
        value = event[name]
        if value is None:
            self.null += 1
            return
        self.present += 1
        rejection = check_event({name: value}, [self.feature])
        if rejection is not None:
            self.mismatched[rejection.reason.value] += 1
        elif self.feature.kind == "categorical" and category_text(value) not in self.known:
            self.unknown += 1

    @property
    def known(self) -> frozenset[str]:
        return frozenset(self.feature.categories or ())


@dataclass
class CheckReport:
    """The whole check: per-feature counts and the dead letters the worker would write."""

    source: str
    events: int = 0
    objects: int = 0
    features: list[FeatureCounts] = field(default_factory=list)
    dead_letters: Counter[str] = field(default_factory=Counter)

    def mostly_absent(self) -> list[str]:
        """Features absent from more than ``MOSTLY_ABSENT`` of the events (every feature is
        needed: an absent one is a ``missing_feature`` dead letter)."""
        total = max(self.objects, 1)
        return [f.feature.name for f in self.features if f.absent / total > MOSTLY_ABSENT]

    def as_json(self) -> dict[str, Any]:
        total = max(self.objects, 1)
        return {
            "source": self.source,
            "events": self.events,
            "objects": self.objects,
            "features": [
                {
                    "name": f.feature.name,
                    "kind": f.feature.kind,
                    "dtype": f.feature.dtype,
                    "nullable": f.feature.nullable,
                    "present_rate": f.present / total,
                    "absent_rate": f.absent / total,
                    "null_rate": f.null / total,
                    "type_mismatch_rate": sum(f.mismatched.values()) / total,
                    "type_mismatches": dict(sorted(f.mismatched.items())),
                    "unknown_category_rate": (
                        f.unknown / max(f.present - sum(f.mismatched.values()), 1)
                        if f.feature.kind == "categorical"
                        else None
                    ),
                }
                for f in self.features
            ],
            "dead_letter_rate": sum(self.dead_letters.values()) / max(self.events, 1),
            "dead_letters": dict(sorted(self.dead_letters.items())),
            "mostly_absent": self.mostly_absent(),
        }

    def table(self) -> list[str]:
        data = self.as_json()
        lines = [
            f"{counted(self.events, 'event')} from {self.source} "
            f"({counted(self.objects, 'JSON object')})"
        ]
        header = ("feature", "dtype", "present", "absent", "null", "wrong type", "unknown cat.")
        rows = [header]
        for f in data["features"]:
            unknown = f["unknown_category_rate"]
            rows.append(
                (
                    f["name"] + ("" if f["nullable"] else " *"),
                    f["dtype"],
                    _pct(f["present_rate"]),
                    _pct(f["absent_rate"]),
                    _pct(f["null_rate"]),
                    _pct(f["type_mismatch_rate"]),
                    "-" if unknown is None else _pct(unknown),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        reasons = ", ".join(
            f"{reason} {_pct(count / max(self.events, 1))}"
            for reason, count in sorted(self.dead_letters.items())
        )
        if any(not f["nullable"] for f in data["features"]):  # the footnote of a `*`
            lines.append("(* a null is not imputed: it is a dead letter)")
        lines.append(
            f"would be dead letters: {_pct(data['dead_letter_rate'])}"
            + (f" ({reasons})" if reasons else "")
        )
        for name in data["mostly_absent"]:
            lines.append(f"feature {name!r} is absent from most events: the model needs it")
        return lines


def _pct(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def check_events(bundle: Bundle, path: Path, decoder: WireDecoder | None = None) -> CheckReport:
    """Read ``path`` (a recording or JSONL events) and check every event against ``bundle``.

    ``decoder`` (``--value-format avro|json-schema``): the recording's values are in the
    wire format, decoded with the writer schemas it holds (``record`` keeps them), so a
    schema version without a feature the model needs shows before deploying.
    BadInputError for a file that cannot be read.
    """
    report = CheckReport(source=path.name)
    report.features = [FeatureCounts(f) for f in bundle.features]
    scorer = BatchScorer(bundle, include_source=False, decoder=decoder)
    if decoder is not None:
        with _opened(path) as source:
            for item in read_recording_items(source, path.name):
                if isinstance(item, WriterSchema):
                    decoder.learn(item)
    with _opened(path) as source:
        messages = (m.value for m in read_publishable(source, path.name, PublishOptions()))
        for batch in _batches(messages):
            if decoder is not None:
                for schema_id in decoder.wanted(batch):
                    decoder.missing(schema_id, f"schema id {schema_id} is not in {path.name}")
            _check_batch(report, scorer, batch)
    return report


def _opened(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror}") from None


def _decoded(value: bytes | None, decoder: WireDecoder | None) -> Any:
    if decoder is not None:
        return decoder.decode(value) if value is not None else None
    try:
        return orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None


def _batches(values: Iterable[bytes | None]) -> Iterable[list[bytes | None]]:
    batch: list[bytes | None] = []
    for value in values:
        batch.append(value)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_batch(report: CheckReport, scorer: BatchScorer, values: list[bytes | None]) -> None:
    report.events += len(values)
    for value in values:
        event = _decoded(value, scorer.decoder)
        if isinstance(event, dict):
            report.objects += 1
            for counts in report.features:
                counts.add(event)
    scored = scorer.score([InputEvent(v) for v in values])
    report.dead_letters.update(r.rejection.reason.value for r in scored.rejected)
