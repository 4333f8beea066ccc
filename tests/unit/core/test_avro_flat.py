"""The compiled reader for flat Avro records (worker.core.avro_flat) decodes exactly what
fastavro decodes, or declines; the wire decoder in front of it keeps every event to its
own bytes and every bad event's dead letter as it was."""

from __future__ import annotations

import io
import json
import math
import random
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from examples.stream import generate_labelled_events
from examples.wire import SCHEMA_V1, SCHEMA_V2, avro_value, events_of
from schemas.rejection import Rejection
from worker.core.avro_flat import compile_reader
from worker.core.formats import ValueFormat, WireDecoder, WriterSchema

WIDE: dict[str, Any] = {
    "type": "record",
    "name": "Wide",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "y", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
        {"name": "x", "type": {"type": "fixed", "name": "X", "size": 3}},
        {"name": "u", "type": ["null", "long", "double", "string"]},
        {"name": "n", "type": "null"},
    ],
}

_LONG = st.integers(-(2**63), 2**63 - 1)
_WIDE_VALUES = st.fixed_dictionaries(
    {
        "b": st.booleans(),
        "i": st.integers(-(2**31), 2**31 - 1),
        "l": _LONG,
        "f": st.floats(width=32),
        "d": st.floats(),
        "s": st.text(),
        "y": st.binary(max_size=20),
        "e": st.sampled_from(["A", "B", "C"]),
        "x": st.binary(min_size=3, max_size=3),
        "u": st.none() | _LONG | st.floats() | st.text(max_size=5),
        "n": st.none(),
    }
)


def _write(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema), record)
    return out.getvalue()


def _fastavro(schema: dict[str, Any], payload: bytes) -> tuple[str, Any]:
    """What fastavro makes of a payload: ("ok", record) when it decodes with no byte left."""
    stream = io.BytesIO(payload)
    try:
        record = schemaless_reader(stream, parse_schema(schema), None)
    except Exception as exc:
        return ("error", type(exc).__name__)
    return ("ok", record) if stream.tell() == len(payload) else ("left", None)


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN bits and the type of every value included."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def _check(schema: dict[str, Any], payload: bytes) -> bool:
    """The compiled reader on ``payload`` agrees with fastavro, or declines. True: decoded."""
    read = compile_reader(schema)
    assert read is not None
    got = read(b"\x00hdr!" + payload, 5)
    if got is None:
        return False
    outcome, expected = _fastavro(schema, payload)
    assert outcome == "ok", f"compiled reader accepted what fastavro does not: {payload!r}"
    assert _same(got, expected), (got, expected)
    return True


@settings(max_examples=300, deadline=None)
@given(record=_WIDE_VALUES)
def test_every_valid_value_decodes_as_fastavro_does(record: dict[str, Any]) -> None:
    """Declined only where the module says so: a 10-byte varint, a float NaN."""
    payload = _write(WIDE, record)
    longs = [record["i"], record["l"]] + ([record["u"]] if type(record["u"]) is int else [])
    zigzag = [2 * v if v >= 0 else -2 * v - 1 for v in longs]
    declined = any(z >= 2**63 for z in zigzag) or math.isnan(record["f"])
    assert _check(WIDE, payload) is not declined


@settings(max_examples=400, deadline=None)
@given(record=_WIDE_VALUES, data=st.data())
def test_corrupt_values_are_declined_or_decoded_as_fastavro_does(
    record: dict[str, Any], data: st.DataObject
) -> None:
    payload = bytearray(_write(WIDE, record))
    how = data.draw(st.sampled_from(["flip", "cut", "extend", "replace"]))
    if how == "flip" and payload:
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        del payload[data.draw(st.integers(0, len(payload))) :]
    elif how == "extend":
        payload += data.draw(st.binary(min_size=1, max_size=4))
    else:
        payload = bytearray(data.draw(st.binary(max_size=60)))
    _check(WIDE, bytes(payload))


def test_the_penguin_schemas_compile_and_decode_as_fastavro() -> None:
    events = events_of([line for line, r in generate_labelled_events(300, 3) if r is None])
    for schema in (SCHEMA_V1, SCHEMA_V2):
        plain = json.loads(json.dumps(schema))
        for field in plain["fields"]:  # as the wire decoder gives it: logical types removed
            if isinstance(field["type"], dict):
                field["type"].pop("logicalType", None)
        assert all(_check(plain, avro_value(1, schema, e)[5:]) for e in events)


def _one_field(kind: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": [{"name": "a", "type": kind}]}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "items": "long"},
        _one_field({"type": "array", "items": "long"}),
        _one_field({"type": "map", "values": "long"}),
        _one_field("demo.Named"),
        _one_field({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}),
        _one_field({"type": "record", "name": "In", "fields": []}),
        _one_field(["null", ["long"]]),
    ],
)
def test_schemas_it_does_not_compile_are_left_to_fastavro(schema: dict[str, Any]) -> None:
    assert compile_reader(schema) is None


def _decoder() -> WireDecoder:
    decoder = WireDecoder(ValueFormat.AVRO)
    decoder.learn(WriterSchema(1, "AVRO", json.dumps(SCHEMA_V1)))
    decoder.learn(WriterSchema(2, "AVRO", json.dumps(SCHEMA_V2)))
    return decoder


def _slow_decoder() -> WireDecoder:
    """The same decoder with every compiled reader removed: fastavro for every value."""
    decoder = _decoder()
    decoder.compiled.clear()
    return decoder


def test_a_bad_event_never_shifts_its_neighbours_values() -> None:
    """A batch of good events with truncated, extended, garbled and foreign ones between
    them: every event decodes (or is rejected, same reason and detail) exactly as it does
    alone through fastavro."""
    rng = random.Random(5)
    events = events_of([line for line, r in generate_labelled_events(400, 9) if r is None])
    values: list[bytes] = []
    for i, event in enumerate(events):
        good = avro_value(1, SCHEMA_V1, event) if i % 2 else avro_value(2, SCHEMA_V2, event)
        kind = rng.randrange(6)
        if kind == 0:
            good = good[: rng.randrange(5, len(good))]
        elif kind == 1:
            good = good + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        elif kind == 2:
            at = rng.randrange(5, len(good))
            good = good[:at] + bytes([good[at] ^ rng.randrange(1, 256)]) + good[at + 1 :]
        values.append(good)
    fast, slow = _decoder(), _slow_decoder()
    compiled = 0
    for value in values:
        got, expected = fast.decode(value), slow.decode(value)
        if isinstance(expected, Rejection):
            assert isinstance(got, Rejection) and got == expected
        else:
            assert _same(got, expected)
            compiled += 1
    assert compiled > len(values) // 3  # the good ones went through the compiled reader
    assert fast.compiled and not slow.compiled


def test_a_schema_id_marked_missing_drops_its_compiled_reader() -> None:
    decoder = _decoder()
    value = avro_value(1, SCHEMA_V1, {"event_id": "a", "ts": 1})
    assert isinstance(decoder.decode(value), dict)
    decoder.missing(1, "gone")
    outcome = decoder.decode(value)
    assert isinstance(outcome, Rejection) and outcome.reason == "unknown_schema"
