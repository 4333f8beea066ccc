"""Penguin events in the Confluent wire format (Avro, JSON Schema), for the tests, the bench
and the demo: writer schemas of three versions, encoders, and bytes that are not what they claim."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_writer

# Each number may be an int or a float in the JSON events (examples.stream): a union of
# long and double keeps its type, so the decoded event is the JSON event, int for int.
_NUMBER = ["null", "long", "double"]
_NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]

SCHEMA_V1: dict[str, Any] = {
    "type": "record",
    "name": "Penguin",
    "namespace": "demo",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "island", "type": ["null", "string"], "default": None},
        *({"name": name, "type": _NUMBER, "default": None} for name in _NUMERIC),
        {"name": "sex", "type": ["null", "string"], "default": None},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
"""The first version: every field of examples.stream's events."""

SCHEMA_V2: dict[str, Any] = {
    **SCHEMA_V1,
    "fields": [
        *(f for f in SCHEMA_V1["fields"] if f["name"] != "ts"),
        {"name": "colony", "type": "string", "default": "unknown"},
    ],
}
"""Compatible: drops ``ts`` (not a feature), adds ``colony`` with a default."""

SCHEMA_V3: dict[str, Any] = {
    **SCHEMA_V2,
    "fields": [f for f in SCHEMA_V2["fields"] if f["name"] != "sex"],
}
"""Drops ``sex``, a feature of the penguins bundle: its events are ``missing_feature``."""

JSON_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Penguin",
    "type": "object",
    "properties": {
        "event_id": {"type": "string"},
        "island": {"type": ["string", "null"]},
        **{name: {"type": ["number", "null"]} for name in _NUMERIC},
        "sex": {"type": ["string", "null"]},
        "ts": {"type": "integer"},
    },
    "required": ["event_id"],
}

_PARSED: dict[int, Any] = {}


def header(schema_id: int) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big")


def for_version(event: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The event as a producer with this schema version writes it."""
    names = {f["name"] for f in schema["fields"]}
    out = {k: v for k, v in event.items() if k in names}
    if "colony" in names:
        out["colony"] = "torgersen-north"
    return out


def avro_value(schema_id: int, schema: dict[str, Any], event: dict[str, Any]) -> bytes:
    """The wire-format bytes of ``event`` written with ``schema``."""
    key = id(schema)
    parsed = _PARSED.get(key)
    if parsed is None:
        parsed = _PARSED[key] = parse_schema(schema)
    buffer = io.BytesIO()
    schemaless_writer(buffer, parsed, for_version(event, schema))
    return header(schema_id) + buffer.getvalue()


def json_schema_value(schema_id: int, event: dict[str, Any]) -> bytes:
    return header(schema_id) + orjson.dumps(event)


BAD_KINDS = ("wrong_format", "unknown_schema", "invalid_payload")


def bad_value(kind: str, good: bytes, rng: random.Random, unknown_id: int = 999_999) -> bytes:
    """Bytes that are not what they claim, of one dead-letter reason."""
    if kind == "wrong_format":  # a JSON event on an Avro topic: no magic byte
        return b'{"island": "Biscoe"}'
    if kind == "unknown_schema":
        return header(unknown_id) + good[5:]
    if kind == "invalid_payload":  # cut short, or a byte left over
        return good[: rng.randrange(5, len(good) - 1)] if rng.random() < 0.5 else good + b"\x01"
    raise ValueError(kind)


def events_of(lines: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in lines]


def write_avro_recording(
    events: Path, out: Path, schema_id: int = 1, key_field: str | None = None
) -> tuple[int, int]:
    """The events file as a recording of Avro values (``SCHEMA_V1``, its schema line first),
    for ``publish --value-format avro`` (which registers the schema and renumbers the ids).
    A line that is not a penguin event Avro can hold (the stream's poison) stays its JSON
    bytes: the worker dead-letters it as ``wrong_format``. ``key_field``: each message's
    key is that field's text (unkeyed messages stick to one partition per producer batch).
    Returns (Avro, kept as JSON)."""
    from worker.core.formats import WriterSchema
    from worker.core.recording import RecordedMessage, encode_message, encode_schema

    schema = WriterSchema(schema_id, "AVRO", json.dumps(SCHEMA_V1))
    encoded = kept = 0
    with events.open("rb") as source, out.open("wb") as sink:
        sink.write(encode_schema(schema) + b"\n")
        for offset, raw in enumerate(source):
            line = raw.rstrip(b"\r\n")
            key = None
            try:
                event = orjson.loads(line)
                if key_field is not None and isinstance(event, dict) and key_field in event:
                    key = str(event[key_field]).encode()
                value = avro_value(schema_id, SCHEMA_V1, event)
                encoded += 1
            except Exception:  # not JSON, not an object, or a value Avro's types refuse
                value = line
                kept += 1
            message = RecordedMessage("", 0, offset, None, None, key, value)
            sink.write(encode_message(message) + b"\n")
    return encoded, kept


def main(argv: list[str] | None = None) -> int:
    """``python -m examples.wire --input events.jsonl --output rec.jsonl [--key-field F]``:
    the Avro recording the compose stack's Avro producer publishes."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m examples.wire", description=main.__doc__)
    parser.add_argument("--input", type=Path, required=True, help="JSON lines events")
    parser.add_argument("--output", type=Path, required=True, help="recording to write")
    parser.add_argument("--key-field", default=None, help="the key of each message")
    args = parser.parse_args(argv)
    encoded, kept = write_avro_recording(args.input, args.output, key_field=args.key_field)
    print(f"{encoded} events as Avro, {kept} kept as JSON -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
