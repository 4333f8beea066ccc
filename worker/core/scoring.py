"""The pure batch scorer: raw event bytes in, prediction records and rejections out.

No I/O here. The research path (`score`), the live worker and replay all hand
batches of ``InputEvent`` to ``BatchScorer.score`` and act on the result, so
they cannot disagree about an event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, Protocol, cast

import orjson
import pandas as pd

from model_bundles.bundle import Bundle
from model_bundles.events import CheckedBatch, check_batch
from model_bundles.predict import Outputs
from model_bundles.values import category_text
from schemas.rejection import Rejection
from schemas.wire_names import RejectReason
from worker.core.encoding import RecordEncoder
from worker.core.events import InputEvent
from worker.core.formats import HEADER_BYTES, WireDecoder
from worker.core.ids import event_id, fallback_id
from worker.core.json_columns import Decide, JsonColumns
from worker.core.model_errors import ModelCircuit, isolate, model_error
from worker.core.sizes import DEFAULT_MAX_EVENT_BYTES as DEFAULT_MAX_EVENT_BYTES


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


class ScoringObserver(Protocol):
    """What the live loop and replay both report per batch (``WorkerMetrics`` is one)."""

    def events_read(self, topic: str, count: int) -> None:
        """Events read for the first time (an event read again after a rollback is not)."""

    def batch_scored(
        self, topic: str, consumed: int, batch: ScoredBatch, duration_s: float
    ) -> None: ...
    def delivered(
        self,
        count: int,
        event_timestamps_ms: list[int | None],
        now_s: float,
        delivery_s: float | None = None,
    ) -> None: ...


class BatchScorer:
    """Decode, validate, score in one model call, encode. An event's outcome never depends
    on its batch; the only state across batches is the circuit rule's count of batches in
    a row on which the model raised for every event (``worker.core.model_errors``)."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        id_field: str | None = None,
        include_source: bool = True,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        decoder: WireDecoder | None = None,
    ) -> None:
        self.bundle = bundle
        self.decoder = decoder
        """Avro / JSON Schema values (``worker.core.formats``); None: plain JSON. The caller
        gives it the batch's writer schemas (``decoder.wanted``) before ``score``."""
        self.id_field = id_field or bundle.manifest.id_column or "event_id"
        self.include_source = include_source
        self.max_event_bytes = max_event_bytes
        manifest = bundle.manifest
        model = {"name": manifest.name, "version": manifest.version, "digest": manifest.digest}
        labels = [str(category_text(c)) for c in manifest.classes] if manifest.classes else None
        if labels and manifest.decision and len(labels) == 2:
            labels = labels[1:]  # a binary decision function: the positive class's value
        self._records = RecordEncoder(
            model,
            labels,
            include_source=include_source,
            scores_key="decision" if manifest.decision else "scores",
        )
        self._columns = (
            JsonColumns(manifest.features, self.id_field, max_event_bytes)
            if decoder is None and JsonColumns.serves(manifest.features, self.id_field)
            else None
        )
        """The fast path of plain JSON values (``worker.core.json_columns``), when it applies."""
        golden = [row.event for row in bundle.reference.golden]
        self._circuit = ModelCircuit(golden, bundle.predict_events)
        self.isolating_calls = 0
        """Model calls made isolating failing events, ever: a batch being isolated makes
        many short calls, and the watchdog (``worker.live.watchdog``) sees them as progress."""

    def score(self, events: Sequence[InputEvent]) -> ScoredBatch:
        """Outcomes of one batch: a record per event scored, a rejection per event that
        cannot be (its reason; ``model_error`` when the pipeline raised on it alone).
        ModelFailure (a RuntimeFailure, exit 3) when the circuit rule says the model, not
        the events, is at fault."""
        fast = None
        if self._columns is not None:
            fast = self._columns.read(events, self._verdict_at(events))
        if fast is None:
            return self._score_general(events)
        checked = fast.checked
        try:
            outputs = self.bundle.predict_model_frame(checked.frame)
        except Exception as exc:  # isolated as the general path does, from its own frame
            return self._isolated(events, *self._checked(events), exc)
        if checked.accepted:
            self._circuit.batch_done(len(checked.accepted), ())
        indices = checked.accepted
        whole = len(indices) == len(events)
        sources = events if whole else [events[i] for i in indices]
        ids = cast(list[str], fast.ids)
        if None in fast.ids:  # no id field: the key, else the bytes (SPEC's rule)
            ids = [
                fallback_id(s.key, s.value) if i is None else i
                for i, s in zip(fast.ids, sources, strict=True)
            ]
        return ScoredBatch(
            indices=indices,
            records=self._records.encode(ids, sources, outputs),
            rejected=[Rejected(i, r) for i, r in checked.rejected],
            frame=checked.frame,
            outputs=outputs,
            unknown_categories=checked.unknown_categories,
        )

    def _checked(
        self, events: Sequence[InputEvent]
    ) -> tuple[list[dict[str, Any]], list[int], list[Rejected], CheckedBatch]:
        """The general path's decode and check: the decoded objects, their positions, the
        events rejected (all of them, in batch order) and the check of the decoded ones."""
        decoded, positions, rejected = self._decode_all(events)
        checked = check_batch(decoded, self.bundle.manifest.features)
        if checked.rejected and _exact_integers(events, decoded, positions, checked):
            checked = check_batch(decoded, self.bundle.manifest.features)
        if checked.rejected:
            rejected.extend(Rejected(positions[i], r) for i, r in checked.rejected)
            rejected.sort(key=attrgetter("index"))
        return decoded, positions, rejected, checked

    def _verdict_at(self, events: Sequence[InputEvent]) -> Decide:
        """The general path's verdict on the event at a position of ``events``, alone: its
        rejection, or None when it scores."""

        def verdict(index: int) -> Rejection | None:
            _, _, rejected, _ = self._checked([events[index]])
            return rejected[0].rejection if rejected else None

        return verdict

    def _score_general(self, events: Sequence[InputEvent]) -> ScoredBatch:
        decoded, positions, rejected, checked = self._checked(events)
        try:
            outputs = self.bundle.predict_model_frame(checked.frame)
        except Exception as exc:  # the pipeline's error, whatever its class: isolate it
            return self._isolated(events, decoded, positions, rejected, checked, exc)
        if checked.accepted:
            self._circuit.batch_done(len(checked.accepted), ())
        every = len(checked.accepted) == len(decoded)  # nothing rejected after decoding
        indices = positions if every else [positions[i] for i in checked.accepted]
        valid = decoded if every else [decoded[i] for i in checked.accepted]
        # every event scored, in order: the events are the records' sources as they are
        whole = every and len(positions) == len(events)
        return ScoredBatch(
            indices=indices,
            records=self._encode(events, indices, valid, outputs, whole),
            rejected=rejected,
            frame=checked.frame,
            outputs=outputs,
            unknown_categories=checked.unknown_categories,
        )

    def _isolated(
        self,
        events: Sequence[InputEvent],
        decoded: list[dict[str, Any]],
        positions: list[int],
        rejected: list[Rejected],
        checked: CheckedBatch,
        first: Exception,
    ) -> ScoredBatch:
        """The batch's model call raised ``first``: find the events that raise alone."""
        accepted, features = checked.accepted, self.bundle.manifest.features

        def score_alone(rows: Sequence[int]) -> Outputs:  # framed as if it came alone
            self.isolating_calls += 1
            sub = check_batch([decoded[accepted[r]] for r in rows], features)
            return self.bundle.predict_model_frame(sub.frame)

        result = isolate(score_alone, range(len(accepted)), first)
        self._circuit.batch_done(len(result.rows), result.failed)
        rejected.extend(Rejected(positions[accepted[r]], model_error(e)) for r, e in result.failed)
        rejected.sort(key=attrgetter("index"))
        indices = [positions[accepted[r]] for r in result.rows]
        valid = [decoded[accepted[r]] for r in result.rows]
        frame = checked.frame.iloc[result.rows].reset_index(drop=True)
        outputs = result.outputs
        if outputs is None:  # no event scored: the empty outputs, no model call
            outputs = self.bundle.predict_model_frame(frame)
        # unknown categories of the events scored: a model_error dead letter was not
        unknown = check_batch(valid, features).unknown_categories if result.failed else None
        return ScoredBatch(
            indices=indices,
            records=self._encode(events, indices, valid, outputs),
            rejected=rejected,
            frame=frame,
            outputs=outputs,
            unknown_categories=checked.unknown_categories if unknown is None else unknown,
        )

    def _decode_all(
        self, events: Sequence[InputEvent]
    ) -> tuple[list[dict[str, Any]], list[int], list[Rejected]]:
        """Decoded objects with their positions in the batch, and the events rejected."""
        if self.decoder is not None:
            return self._decode_wire(events, self.decoder)
        every = _decode_every(events, self.max_event_bytes)
        if every is not None:
            return every, list(range(len(events))), []
        decoded: list[dict[str, Any]] = []
        positions: list[int] = []
        rejected: list[Rejected] = []
        loads, limit = orjson.loads, self.max_event_bytes
        for index, event in enumerate(events):
            value = event.value
            if value is not None and len(value) <= limit:  # the common case, inline
                try:
                    obj = loads(value)
                except orjson.JSONDecodeError:
                    obj = None
                if type(obj) is dict:
                    decoded.append(obj)
                    positions.append(index)
                    continue
            _keep(index, self._decode(value), decoded, positions, rejected)
        return decoded, positions, rejected

    def _decode_wire(
        self, events: Sequence[InputEvent], decoder: WireDecoder
    ) -> tuple[list[dict[str, Any]], list[int], list[Rejected]]:
        decoded: list[dict[str, Any]] = []
        positions: list[int] = []
        rejected: list[Rejected] = []
        limit, compiled, decode = self.max_event_bytes, decoder.compiled, decoder.decode
        for index, event in enumerate(events):
            value = event.value
            if value is not None and len(value) <= limit:
                read = compiled.get(value[:HEADER_BYTES])  # the common case, inline
                obj = None if read is None else read(value, HEADER_BYTES)
                if obj is not None:
                    decoded.append(obj)
                    positions.append(index)
                    continue
            if value is None:
                outcome: dict[str, Any] | Rejection = Rejection(
                    RejectReason.WRONG_FORMAT, "message has no value"
                )
            elif len(value) > limit:
                outcome = Rejection(RejectReason.TOO_LARGE, f"{len(value)} bytes > limit {limit}")
            else:
                outcome = decode(value)
            _keep(index, outcome, decoded, positions, rejected)
        return decoded, positions, rejected

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
        whole: bool = False,
    ) -> list[bytes]:
        """``whole``: ``indices`` is every position of ``events`` in order."""
        sources = events if whole else [events[i] for i in indices]
        try:
            ids: list[Any] = list(map(itemgetter(self.id_field), valid))
        except KeyError:  # some event has no id field: the general rule below
            ids = [event.get(self.id_field) for event in valid]
        if not set(map(type, ids)) <= {str}:  # some id is not a plain string: the general rule
            name = self.id_field
            ids = [
                event_id(e, name, source.key, source.value)
                for e, source in zip(valid, sources, strict=True)
            ]
        return self._records.encode(ids, sources, outputs)


def _keep(
    index: int,
    outcome: dict[str, Any] | Rejection,
    decoded: list[dict[str, Any]],
    positions: list[int],
    rejected: list[Rejected],
) -> None:
    """The slow path's verdict on the event at ``index``: its object and position kept, or
    its rejection (the common case appends inline, without this call)."""
    if isinstance(outcome, Rejection):
        rejected.append(Rejected(index, outcome))
    else:
        decoded.append(outcome)
        positions.append(index)


_UINT64_BEYOND = float(2**64)
_VALUE = attrgetter("value")
_DICT_ONLY = frozenset({dict})


def _decode_every(events: Sequence[InputEvent], limit: int) -> list[dict[str, Any]] | None:
    """Every value of ``events`` as a JSON object, when each one is (bytes within ``limit``
    that orjson reads as an object): the common batch, decoded with no Python loop per
    event. None as soon as one is not (no value, too large, not JSON, not an object); the
    caller then looks at each event on its own, and every verdict is as before."""
    try:
        values = list(map(_VALUE, events))
        if not values or max(map(len, values)) > limit:  # TypeError on a None value
            return None
        decoded = list(map(orjson.loads, values))
    except (TypeError, orjson.JSONDecodeError):
        return None
    return decoded if set(map(type, decoded)) <= _DICT_ONLY else None


def _exact_integers(
    events: Sequence[InputEvent],
    decoded: list[dict[str, Any]],
    positions: list[int],
    checked: CheckedBatch,
) -> bool:
    """Re-read, with the stdlib, each rejected event holding an integral number beyond
    64 bits: orjson reads ``9999999999999999999999`` as the float ``1e+22``, and the
    dead letter must show the integer as written (and its range). Only rejected events
    are looked at, so the common path pays nothing. True when one was re-read."""
    again = False
    for row, _ in checked.rejected:
        if any(_beyond_64_bits(v) for v in decoded[row].values()):
            value = events[positions[row]].value
            exact = json.loads(value) if value is not None else None
            if type(exact) is dict:
                decoded[row] = exact
                again = True
    return again


def _beyond_64_bits(value: Any) -> bool:
    return type(value) is float and abs(value) >= _UINT64_BEYOND and value.is_integer()


def _decode_lenient(value: bytes, error: orjson.JSONDecodeError) -> Any:
    """orjson rejects NaN/Infinity literals; the stdlib reads them, so they can be
    reported as ``non_finite`` on the feature rather than as invalid JSON."""
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return Rejection(RejectReason.INVALID_JSON, f"not valid JSON: {error}")
