"""Event value formats: plain JSON, or the Confluent wire format (Avro, JSON Schema). No I/O.

The wire format, as Confluent's serializers write it::

    byte 0      magic byte 0
    bytes 1-4   the writer schema's id in the Schema Registry, big-endian unsigned
    bytes 5-    the payload: Avro binary (no container header), or JSON text

``WireDecoder`` parses the header itself and decodes with writer schemas it has been given
(``learn``): fetching them is the caller's I/O (``worker.kafka.registry`` for a live
registry, the schema lines of a recording for research). Decoding gives the same Python
objects ``orjson.loads`` gives for the same event written as JSON, so everything after
the decode step (check, frame, predict, encode) cannot tell the formats apart:

- Avro null, boolean, int/long, float/double, string, array, map, record: None, bool, int,
  float, str, list, dict, dict (a ``null`` branch of a union is a missing value).
- ``decimal``: the number its text would be in JSON: an int when its scale is 0, else the
  nearest float64 (as a JSON reader reads ``12.50``).
- Every other logical type is read as its underlying Avro type: ``date`` the days since
  1970-01-01, ``timestamp-millis`` / ``-micros`` (and ``local-``) epoch milliseconds /
  microseconds, ``time-millis`` / ``-micros`` since midnight, ``uuid`` its text.
- An enum is its symbol; bytes and fixed stay bytes (a feature given bytes is ``wrong_type``).
- Avro ``float`` is 32-bit: its value is widened exactly, so ``0.1`` becomes
  0.10000000149011612; write ``double`` for the same record as JSON's ``0.1``.

Rejections: ``wrong_format`` (no magic byte, or a schema of another type), ``unknown_schema``
(no such id), ``invalid_payload`` (the payload does not decode with its schema, or bytes
are left over).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from schemas.rejection import Rejection
from schemas.wire_names import RejectReason
from worker.core.avro_flat import FlatReader, compile_reader
from worker.core.wire import (
    RegistryUnavailable,
    SchemaNotFound,
    SchemaSource,
    ValueFormat,
    WriterSchema,
)

__all__ = [
    "KnownSchemas",
    "RegistryUnavailable",
    "SchemaNotFound",
    "SchemaSource",
    "ValueFormat",
    "WireDecoder",
    "WriterSchema",
    "learn_all",
    "schema_id_of",
]

MAGIC = 0
HEADER_BYTES = 5
_KEPT_LOGICAL_TYPES = frozenset({"decimal"})


def schema_id_of(value: bytes) -> int | None:
    """The schema id of a wire-format value; None when the header is not there."""
    if len(value) < HEADER_BYTES or value[0] != MAGIC:
        return None
    return int.from_bytes(value[1:HEADER_BYTES], "big")


@dataclass(frozen=True, slots=True)
class _Avro:
    schema: Any
    """fastavro's parsed form."""
    read: Any
    """``fastavro.schemaless_reader`` (imported with the first Avro schema, not before)."""
    decimals: bool
    """Some field may be a decimal: top-level Decimal values become numbers."""
    flat: FlatReader | None = None
    """The reader compiled for a flat record (``worker.core.avro_flat``), tried first."""


@dataclass(frozen=True, slots=True)
class _Json:
    pass


class WireDecoder:
    """Decodes wire-format values of one format with the writer schemas it has learnt."""

    def __init__(self, value_format: ValueFormat) -> None:
        if value_format is ValueFormat.JSON:
            raise ValueError("plain JSON needs no wire decoder")
        self.format = value_format
        self._known: dict[int, _Avro | _Json | Rejection] = {}
        self.compiled: dict[bytes, FlatReader] = {}
        """Compiled readers by the 5 header bytes naming their schema: one lookup an event
        (``BatchScorer`` looks them up inline; a reader's None means: call ``decode``)."""
        self.schemas: dict[int, WriterSchema] = {}
        """Every schema learnt, by id (what a recording keeps)."""

    def wanted(self, values: Iterable[bytes | None]) -> set[int]:
        """Schema ids these values name that are neither learnt nor known to be missing."""
        known = self._known
        ids: set[int] = set()
        for value in values:
            if value is not None and len(value) >= HEADER_BYTES and value[0] == MAGIC:
                schema_id = int.from_bytes(value[1:HEADER_BYTES], "big")
                if schema_id not in known:
                    ids.add(schema_id)
        return ids

    def learn(self, schema: WriterSchema) -> None:
        """Parse and keep a writer schema; one that cannot serve rejects its events."""
        self.schemas[schema.schema_id] = schema
        known = self._known[schema.schema_id] = self._parse(schema)
        header = bytes([MAGIC]) + schema.schema_id.to_bytes(4, "big")
        if isinstance(known, _Avro) and known.flat is not None:
            self.compiled[header] = known.flat
        else:
            self.compiled.pop(header, None)

    def missing(self, schema_id: int, detail: str) -> None:
        """The source has no such schema: its events are ``unknown_schema``."""
        self._known[schema_id] = Rejection(RejectReason.UNKNOWN_SCHEMA, detail)
        self.compiled.pop(bytes([MAGIC]) + schema_id.to_bytes(4, "big"), None)

    def decode(self, value: bytes) -> dict[str, Any] | Rejection:
        """One value to the object JSON decoding would give, or why it cannot be."""
        flat = self.compiled.get(value[:HEADER_BYTES])  # the common case, inline
        if flat is not None:
            obj = flat(value, HEADER_BYTES)
            if obj is not None:
                return obj
        schema_id = schema_id_of(value)
        if schema_id is None:
            return Rejection(
                RejectReason.WRONG_FORMAT,
                f"not in the {self.format.value} wire format (magic byte 0, 4-byte schema id)",
            )
        known = self._known.get(schema_id)
        if known is None:
            return Rejection(RejectReason.UNKNOWN_SCHEMA, f"schema id {schema_id} is not known")
        if isinstance(known, Rejection):
            return known
        if isinstance(known, _Avro):
            return _decode_avro(value, schema_id, known)
        return _decode_json(value, schema_id)

    def _parse(self, schema: WriterSchema) -> _Avro | _Json | Rejection:
        expected = self.format.schema_type
        if schema.schema_type != expected:
            return Rejection(
                RejectReason.WRONG_FORMAT,
                f"schema id {schema.schema_id} is a {schema.schema_type} schema, not {expected}",
            )
        try:
            loaded = json.loads(schema.text)
        except ValueError as exc:
            return Rejection(
                RejectReason.UNKNOWN_SCHEMA, f"schema id {schema.schema_id} is not JSON: {exc}"
            )
        if self.format is ValueFormat.JSON_SCHEMA:
            return _Json()
        from fastavro import parse_schema, schemaless_reader

        decimals = [False]
        plain = _plain_logical_types(loaded, decimals)
        try:
            parsed = parse_schema(plain)
        except Exception as exc:  # fastavro raises several kinds for a bad schema
            return Rejection(
                RejectReason.UNKNOWN_SCHEMA,
                f"schema id {schema.schema_id} is not a usable Avro schema: {exc}",
            )
        return _Avro(parsed, schemaless_reader, decimals[0], compile_reader(plain))


def learn_all(decoder: WireDecoder, source: SchemaSource, schema_ids: Iterable[int]) -> None:
    """Fetch and learn each schema; an id the source has not is remembered as missing.

    RegistryUnavailable propagates (the caller retries or gives up)."""
    for schema_id in sorted(schema_ids):
        try:
            schema = source.get(schema_id)
        except SchemaNotFound as exc:
            decoder.missing(schema_id, f"schema id {schema_id}: {exc}")
            continue
        decoder.learn(schema)


class KnownSchemas:
    """A ``SchemaSource`` over schemas at hand (a recording's), in front of another source."""

    def __init__(self, schemas: Mapping[int, WriterSchema], then: SchemaSource | None) -> None:
        self.schemas = dict(schemas)
        self.then = then

    def get(self, schema_id: int) -> WriterSchema:
        found = self.schemas.get(schema_id)
        if found is not None:
            return found
        if self.then is None:
            raise SchemaNotFound("not in the recording, and no --schema-registry-url")
        return self.then.get(schema_id)


def _decode_avro(value: bytes, schema_id: int, avro: _Avro) -> dict[str, Any] | Rejection:
    stream = io.BytesIO(value)
    stream.seek(HEADER_BYTES)
    try:
        obj = avro.read(stream, avro.schema, None)
    except Exception as exc:  # truncated or corrupt bytes: EOFError, ValueError, IndexError...
        return Rejection(
            RejectReason.INVALID_PAYLOAD,
            f"does not decode with Avro schema id {schema_id}: {type(exc).__name__}: {exc}",
        )
    left = len(value) - stream.tell()
    if left:
        return Rejection(
            RejectReason.INVALID_PAYLOAD,
            f"{left} bytes left after the value of Avro schema id {schema_id}",
        )
    if type(obj) is not dict:
        return Rejection(RejectReason.NOT_AN_OBJECT, f"Avro {type(obj).__name__}, not a record")
    if avro.decimals:
        for name, item in obj.items():
            if type(item) is Decimal:
                obj[name] = _number(item)
    return obj


def _decode_json(value: bytes, schema_id: int) -> dict[str, Any] | Rejection:
    payload = value[HEADER_BYTES:]
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        try:  # NaN/Infinity: read, so the feature check reports them as non_finite
            obj = json.loads(payload)
        except (ValueError, RecursionError):
            return Rejection(
                RejectReason.INVALID_PAYLOAD,
                f"JSON Schema id {schema_id}: the payload is not valid JSON: {exc}",
            )
    if type(obj) is not dict:
        return Rejection(RejectReason.NOT_AN_OBJECT, f"JSON {type(obj).__name__}, not an object")
    return obj


def _number(value: Decimal) -> int | float:
    """A decimal as a JSON reader reads its text: integral scale-0 values as int."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(value)
    return float(value)


def _plain_logical_types(node: Any, decimals: list[bool]) -> Any:
    """The schema with every logical type but decimal removed (read as its Avro type)."""
    if isinstance(node, list):
        return [_plain_logical_types(n, decimals) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _plain_logical_types(v, decimals) for k, v in node.items()}
    logical = out.get("logicalType")
    if logical == "decimal":
        decimals[0] = True
    elif logical is not None and logical not in _KEPT_LOGICAL_TYPES:
        del out["logicalType"]
    return out
