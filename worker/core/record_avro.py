"""Prediction records in Avro (``--output-format avro``): the schema, and the Confluent wire
format both ways. No I/O (registering the schema is ``worker.kafka.registry``).

One schema for every bundle, so a topic's subject (``<topic>-value``) keeps one schema
across model versions, label types and challengers::

    record PredictionRecord (namespace scoring_worker) {
      string event_id;
      union {string, boolean, long, double} prediction;   // a label, or a regression value
      union {null, map<double>} scores = null;            // class label -> probability
      union {null, map<double>} decision = null;          // instead of scores (SPEC)
      ModelRef {string name; string version; string digest} model;
      union {null, SourceRef {string topic; int partition; long offset;
                              union {null, long} timestamp}} source = null;
    }

Every float is an Avro ``double``: the float64's eight bytes, so a score decodes to the
same bits the JSON record's text reads back to. A record is encoded from its JSON bytes
(``RecordEncoder``'s, the ones ``score`` and replay write and parity compares), so both
formats hold the same values by construction; ``json_form`` turns a decoded record back
into the dict ``orjson.loads`` gives for the JSON record. One difference: JSON writes a
non-finite output (NaN, an infinity) as ``null``; Avro writes NaN there.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

from worker.core.formats import HEADER_BYTES, MAGIC, schema_id_of

_STRING = "string"
_SOURCE_REF = "scoring_worker.SourceRef"
_SCORES = ["null", {"type": "map", "values": "double"}]

PREDICTION_RECORD_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "PredictionRecord",
    "namespace": "scoring_worker",
    "doc": "One per valid event (scoring-worker docs/contract.md).",
    "fields": [
        {"name": "event_id", "type": _STRING},
        {
            "name": "prediction",
            "type": [_STRING, "boolean", "long", "double"],
            "doc": "the class label, or the regression value",
        },
        {
            "name": "scores",
            "type": _SCORES,
            "default": None,
            "doc": "class label -> probability (classification only)",
        },
        {
            "name": "decision",
            "type": _SCORES,
            "default": None,
            "doc": "instead of scores, for a classifier without probabilities",
        },
        {
            "name": "model",
            "type": {
                "type": "record",
                "name": "ModelRef",
                "fields": [{"name": n, "type": _STRING} for n in ("name", "version", "digest")],
            },
        },
        {
            "name": "source",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "SourceRef",
                    "fields": [
                        {"name": "topic", "type": _STRING},
                        {"name": "partition", "type": "int"},
                        {"name": "offset", "type": "long"},
                        {
                            "name": "timestamp",
                            "type": ["null", "long"],
                            "doc": "Kafka message timestamp, epoch milliseconds",
                        },
                    ],
                },
            ],
            "default": None,
            "doc": "where the event was read from; null for research score output",
        },
    ],
}
SCHEMA_TEXT = json.dumps(PREDICTION_RECORD_SCHEMA, separators=(",", ":"))
"""The text registered (compact JSON of ``PREDICTION_RECORD_SCHEMA``)."""


def subject_of(topic: str) -> str:
    """The subject of a topic's record values (Confluent's TopicNameStrategy)."""
    return f"{topic}-value"


class AvroRecords:
    """Encodes JSON prediction records to the wire format, per topic, and back.

    ``schema_ids``: output topic -> the id the registry gave ``SCHEMA_TEXT`` under its
    subject. Messages to other topics (dead letters) are not records: left as they are."""

    def __init__(self, schema_ids: Mapping[str, int]) -> None:
        from fastavro import parse_schema, schemaless_reader, schemaless_writer

        self.schema_ids = dict(schema_ids)
        self._headers = {t: bytes([MAGIC]) + i.to_bytes(4, "big") for t, i in schema_ids.items()}
        self._ids = set(self.schema_ids.values())
        self._schema = parse_schema(PREDICTION_RECORD_SCHEMA)
        self._write = schemaless_writer
        self._read = schemaless_reader

    def encodes(self, topic: str) -> bool:
        """Records to this topic are written in Avro."""
        return topic in self._headers

    def encode(self, topic: str, record: bytes) -> bytes:
        """A JSON prediction record (``RecordEncoder``'s bytes) in the wire format of
        ``topic``'s schema id. KeyError for a topic that has none; ValueError (fastavro's)
        for bytes that are not a prediction record."""
        out = io.BytesIO()
        out.write(self._headers[topic])
        self._write(out, self._schema, avro_form(orjson.loads(record)))
        return out.getvalue()

    def decode(self, value: bytes) -> dict[str, Any] | None:
        """A record this worker wrote, as ``orjson.loads`` gives its JSON record; None for
        bytes that are not one (another schema id, no magic byte)."""
        if schema_id_of(value) not in self._ids:
            return None
        stream = io.BytesIO(value)
        stream.seek(HEADER_BYTES)
        record = self._read(stream, self._schema, None)
        return json_form(record) if isinstance(record, dict) else None


def avro_form(record: dict[str, Any]) -> dict[str, Any]:
    """A JSON prediction record as the Avro writer takes it: ``scores`` and ``decision``
    both present (one of them null); a non-finite output (JSON ``null``) as NaN."""
    out = dict(record)
    out.setdefault("scores", None)
    out.setdefault("decision", None)
    if out.get("source") is not None:  # the branch named: fastavro skips trying each one
        out["source"] = (_SOURCE_REF, out["source"])
    if out.get("prediction") is None:
        out["prediction"] = math.nan
    for key in ("scores", "decision"):
        values = out[key]
        if values is not None and None in values.values():
            out[key] = {k: math.nan if v is None else v for k, v in values.items()}
    return out


def json_form(record: dict[str, Any]) -> dict[str, Any]:
    """A decoded Avro record as its JSON record reads: ``decision`` when it is set, else
    ``scores`` (null for a regressor), in the JSON record's key order."""
    decision = record.get("decision")
    key, value = ("decision", decision) if decision is not None else ("scores", record["scores"])
    return {
        "event_id": record["event_id"],
        "prediction": record["prediction"],
        key: value,
        "model": record["model"],
        "source": record["source"],
    }
