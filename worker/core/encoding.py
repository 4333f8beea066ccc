"""Prediction records as bytes, a batch at a time, byte for byte what orjson makes of them.

The reference encoding of one record is ``orjson.dumps`` of the dict

    {"event_id": id, "prediction": p, "scores": {label: score, ...} | None,
     "model": {"name", "version", "digest"}, "source": {...} | None}

(``encode_one``); a decision-function classifier's records carry ``"decision"``
in place of ``"scores"`` (``scores_key``). Building that dict per event cost
more than scoring the batch, so ``RecordEncoder`` fills a bytes template
instead: constant parts (keys, the model) are encoded once, and the variable
values are encoded with orjson in bulk (one call for all the scores of the
batch, one per column of source numbers), then split on commas, kept only when
that gives one piece per value (a value whose text holds a comma gives more). A
test checks it against ``encode_one`` on random batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson

from model_bundles.predict import Outputs

_SOURCE_NUMBERS = (attrgetter("partition"), attrgetter("offset"), attrgetter("timestamp_ms"))
_TOPIC = attrgetter("topic")


class Source(Protocol):
    """Where an event came from (``worker.core.events.InputEvent``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp_ms(self) -> int | None: ...


def encode_one(
    event_id: str,
    prediction: Any,
    scores: dict[str, float] | None,
    model: dict[str, str],
    source: Source | None,
    scores_key: str = "scores",
) -> bytes:
    """The reference encoding of one prediction record (``scores_key``: scores or decision)."""
    where = None
    if source is not None:
        where = {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp": source.timestamp_ms,
        }
    record = {
        "event_id": event_id,
        "prediction": prediction,
        scores_key: scores,
        "model": model,
        "source": where,
    }
    return orjson.dumps(record)


class RecordEncoder:
    """Encodes the records of a batch; same bytes as ``encode_one`` on each."""

    def __init__(
        self,
        model: dict[str, str],
        labels: Sequence[str] | None,
        *,
        include_source: bool,
        scores_key: str = "scores",
    ) -> None:
        self.model = model
        self.labels = list(labels) if labels else []
        self.include_source = include_source
        self.scores_key = scores_key
        # duplicate labels (str(1) == str("1")) make the scores dict shorter: left to encode_one
        self._template_scores = len(set(self.labels)) == len(self.labels)
        self._topics: dict[str, bytes] = {}
        scores = b"{" + b",".join(_escape(orjson.dumps(k)) + b":%b" for k in self.labels) + b"}"
        source = b'{"topic":%b,"partition":%b,"offset":%b,"timestamp":%b}'
        self._template = (
            b'{"event_id":"%b","prediction":%b,'
            + _escape(orjson.dumps(scores_key))
            + b":"
            + (scores if self.labels else b"null")
            + b',"model":'
            + _escape(orjson.dumps(model))
            + b',"source":'
            + (source if include_source else b"null")
            + b"}"
        )

    def encode(
        self, event_ids: Sequence[str], sources: Sequence[Source], outputs: Outputs
    ) -> list[bytes]:
        """One record per event; ``event_ids``, ``sources`` and ``outputs`` row-aligned."""
        rows = len(event_ids)
        if rows == 0:
            return []
        scores = outputs.scores if self.labels else None
        ids = _json_texts(event_ids)
        if ids is None or (self.labels and (
            scores is None or not self._template_scores or scores.shape != (rows, len(self.labels))
        )):  # fmt: skip
            return self._encode_each(event_ids, sources, outputs)
        columns: list[Sequence[bytes]] = [ids, _json_array(outputs.predictions)]
        if scores is not None:
            flat = _json_array(np.ascontiguousarray(scores).ravel())
            width = len(self.labels)
            columns.extend(flat[j::width] for j in range(width))
        if self.include_source:
            columns.extend(self._source_columns(sources))
        template = self._template
        return [template % values for values in zip(*columns, strict=True)]

    def _source_columns(self, sources: Sequence[Source]) -> list[Sequence[bytes]]:
        topics = self._topics
        if len(topics) > 1024:
            topics.clear()
        named = list(map(_TOPIC, sources))
        for topic in set(named).difference(topics):  # a batch holds a topic or a few
            topics[topic] = orjson.dumps(topic)
        names = list(map(topics.__getitem__, named))
        return [names, *(_json_each(list(map(field, sources))) for field in _SOURCE_NUMBERS)]

    def _encode_each(
        self, event_ids: Sequence[str], sources: Sequence[Source], outputs: Outputs
    ) -> list[bytes]:
        predictions = outputs.predictions.tolist()
        scores = outputs.scores.tolist() if outputs.scores is not None and self.labels else None
        return [
            encode_one(
                event_id,
                predictions[i],
                dict(zip(self.labels, scores[i], strict=True)) if scores else None,
                self.model,
                sources[i] if self.include_source else None,
                self.scores_key,
            )
            for i, event_id in enumerate(event_ids)
        ]


def _json_array(values: npt.NDArray[Any]) -> list[bytes]:
    """``_json_each(values.tolist())``: one text per row (a row of a 2-D array is a JSON
    array). A 1-D float64 array goes to orjson as it is: orjson writes a numpy float64 as
    it writes the same Python float (checked on two million random bit patterns, NaN and
    infinities included), without a Python float object per value."""
    if values.ndim == 1 and values.dtype == np.float64 and values.size:
        dumped = orjson.dumps(np.ascontiguousarray(values), option=_NUMPY)
        return dumped[1:-1].split(b",")
    return _json_each(values.tolist())


_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _json_each(values: list[Any]) -> list[bytes]:
    """``[orjson.dumps(v) for v in values]``, in one orjson call where that is exact: the
    array's text split on its commas gives one piece per value unless some value's text
    holds a comma (a string, a list...), and then there are more pieces than values."""
    if not values:
        return []
    pieces = orjson.dumps(values)[1:-1].split(b",")
    if len(pieces) == len(values):
        return pieces
    if set(map(type, values)) <= _STR:  # e.g. labels with commas: each distinct one once
        memo = {v: orjson.dumps(v) for v in set(values)}
        return list(map(memo.__getitem__, values))
    return [orjson.dumps(v) for v in values]


def _json_texts(values: Sequence[str]) -> list[bytes] | None:
    """``[orjson.dumps(v)[1:-1] for v in values]`` (the JSON text of each string without its
    quotes), in one orjson call when none needs an escape: then no string holds a quote,
    and ``","`` can only be a separator. None when some value is not a string."""
    if not set(map(type, values)) <= _STR:
        return None
    bulk = orjson.dumps(values)
    if b"\\" not in bulk:
        return bulk[2:-2].split(b'","')
    return [orjson.dumps(v)[1:-1] for v in values]


_STR = frozenset({str})


def _escape(fragment: bytes) -> bytes:
    """A constant fragment made safe for a ``%`` template."""
    return fragment.replace(b"%", b"%%")
