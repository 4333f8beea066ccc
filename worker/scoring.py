"""The pure batch scorer: raw event bytes in, prediction records and rejections out.

No I/O here. The research path (`score`), the live worker and replay all hand
batches of ``InputEvent`` to ``BatchScorer.score`` and act on the result, so
they cannot disagree about an event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

from model_bundles.bundle import Bundle
from model_bundles.events import Rejection, events_to_frame
from model_bundles.predict import Outputs
from schemas.records import RejectReason

DEFAULT_MAX_EVENT_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class InputEvent:
    """One message to score, as read from Kafka or a file line."""

    value: bytes | None
    key: bytes | None = None
    topic: str = ""
    partition: int = 0
    offset: int = 0
    timestamp_ms: int | None = None

    def fallback_id(self) -> str:
        """Event id when the event has no id field: the key, else its position."""
        if self.key:
            return self.key.decode("utf-8", errors="replace")
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    """Position of the event in the batch handed to ``score``."""
    rejection: Rejection


@dataclass(slots=True)
class ScoredBatch:
    """Outcome of one batch. ``records[i]`` belongs to the event at ``indices[i]``."""

    indices: list[int]
    records: list[bytes]
    rejected: list[Rejected]
    frame: pd.DataFrame
    """Model input frame of the scored events (row-aligned with ``records``)."""
    outputs: Outputs
    unknown_categories: dict[str, int] = field(default_factory=dict)


class BatchScorer:
    """Decode, validate, score in one model call, encode. Stateless per batch."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        id_field: str | None = None,
        include_source: bool = True,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.bundle = bundle
        self.id_field = id_field or bundle.manifest.id_column or "event_id"
        self.include_source = include_source
        self.max_event_bytes = max_event_bytes
        manifest = bundle.manifest
        self._model = {
            "name": manifest.name,
            "version": manifest.version,
            "digest": manifest.digest,
        }
        self._labels = [str(c) for c in manifest.classes] if manifest.classes else None
        self._categorical = [
            (f.name, frozenset(f.categories or ()))
            for f in manifest.features
            if f.kind == "categorical"
        ]

    def score(self, events: Sequence[InputEvent]) -> ScoredBatch:
        valid: list[dict[str, Any]] = []
        indices: list[int] = []
        rejected: list[Rejected] = []
        for index, event in enumerate(events):
            decoded = self._decode(event.value)
            if isinstance(decoded, Rejection):
                rejected.append(Rejected(index, decoded))
                continue
            problem = self.bundle.check_event(decoded)
            if problem is not None:
                rejected.append(Rejected(index, problem))
                continue
            valid.append(decoded)
            indices.append(index)
        frame = events_to_frame(valid, self.bundle.manifest.features)
        outputs = self.bundle.predict_model_frame(frame)
        records = self._encode(events, indices, valid, outputs)
        return ScoredBatch(
            indices=indices,
            records=records,
            rejected=rejected,
            frame=frame,
            outputs=outputs,
            unknown_categories=self._unknown(valid),
        )

    def _decode(self, value: bytes | None) -> dict[str, Any] | Rejection:
        if value is None:
            return Rejection(RejectReason.INVALID_JSON, "message has no value")
        if len(value) > self.max_event_bytes:
            return Rejection(
                RejectReason.TOO_LARGE, f"{len(value)} bytes > limit {self.max_event_bytes}"
            )
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            decoded = _decode_lenient(value, exc)
            if isinstance(decoded, Rejection):
                return decoded
        if not isinstance(decoded, dict):
            return Rejection(
                RejectReason.NOT_AN_OBJECT, f"JSON {type(decoded).__name__}, not an object"
            )
        return decoded

    def _encode(
        self,
        events: Sequence[InputEvent],
        indices: list[int],
        valid: list[dict[str, Any]],
        outputs: Outputs,
    ) -> list[bytes]:
        predictions = outputs.predictions.tolist()
        labels = self._labels or []
        scores = outputs.scores.tolist() if outputs.scores is not None and labels else None
        records = []
        for i, (index, event) in enumerate(zip(indices, valid, strict=True)):
            source = events[index]
            record: dict[str, Any] = {
                "event_id": self._event_id(event, source),
                "prediction": predictions[i],
                "scores": dict(zip(labels, scores[i], strict=True)) if scores else None,
                "model": self._model,
                "source": self._source(source) if self.include_source else None,
            }
            records.append(orjson.dumps(record))
        return records

    def _event_id(self, event: dict[str, Any], source: InputEvent) -> str:
        value = event.get(self.id_field)
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return source.fallback_id()

    @staticmethod
    def _source(event: InputEvent) -> dict[str, Any]:
        return {
            "topic": event.topic,
            "partition": event.partition,
            "offset": event.offset,
            "timestamp": event.timestamp_ms,
        }

    def _unknown(self, valid: list[dict[str, Any]]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name, known in self._categorical:
            unknown = sum(1 for e in valid if (v := e[name]) is not None and v not in known)
            if unknown:
                counts[name] = unknown
        return counts


def _decode_lenient(value: bytes, error: orjson.JSONDecodeError) -> Any:
    """orjson rejects NaN/Infinity literals; the stdlib reads them, so they can be
    reported as ``non_finite`` on the feature rather than as invalid JSON."""
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return Rejection(RejectReason.INVALID_JSON, f"not valid JSON: {error}")
