"""The recording file format: Kafka messages as JSON lines, losslessly. No I/O here.

One JSON object per line, fields in this order::

    {"topic": "events", "partition": 0, "offset": 41, "timestamp": 1735689600000,
     "timestamp_type": "create_time", "key": "ev-7", "value": "{\\"island\\": ...}",
     "headers": [["trace", "abc"], ["trace", {"b64": "/w=="}], ["empty", null]]}

- ``key``, ``value`` and every header value are bytes on the wire. Bytes that
  are valid UTF-8 are written as a JSON string; any other bytes as
  ``{"b64": "<standard base64>"}``; a null key/value/header value as ``null``.
  So an event's JSON stays readable (as a string), and nothing is ever lost.
- ``headers``: a list of ``[name, value]`` pairs, in order, duplicates kept.
- ``timestamp``: epoch milliseconds, or null; ``timestamp_type`` is
  ``create_time``, ``log_append_time`` or null (no timestamp).

Lines are written sorted by partition then offset, so a recording of the same
range is the same bytes every time. Only ``value`` is required when reading:
a hand-written line may leave out the rest (topic ``""``, partition and offset
0, no timestamp, no key, no headers).

A recording of Avro or JSON Schema values (``record --value-format avro``) also holds the
writer schemas its values name, each on its own line before the first message that uses it::

    {"schema_id": 3, "schema_type": "AVRO", "schema": "{\"type\": \"record\", ...}"}

so ``score`` and ``replay`` of the recording decode them with the registry gone. Readers of
messages only (``read_recording``, ``publish``) skip these lines.

``publish`` also takes plain event files (one event per line, no envelope),
like the research path's input: each non-blank line is a message value, as is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from schemas.errors import BadInputError
from worker.core.wire import WriterSchema

TimestampType = Literal["create_time", "log_append_time"]
TIMESTAMP_TYPES: tuple[TimestampType, ...] = ("create_time", "log_append_time")
Header = tuple[str, bytes | None]
ENVELOPE_KEYS = frozenset(
    {"topic", "partition", "offset", "timestamp", "timestamp_type", "key", "value", "headers"}
)
B64 = "b64"
SCHEMA_KEYS = frozenset({"schema_id", "schema_type", "schema"})


class RecordingError(BadInputError):
    """A line of a recording (or events file) cannot be read."""


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One Kafka message as recorded: everything the broker keeps, detached from librdkafka."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    timestamp_type: TimestampType | None
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to publish; ``partition`` None lets the producer's partitioner choose."""

    value: bytes | None
    key: bytes | None = None
    headers: tuple[Header, ...] = ()
    timestamp_ms: int | None = None
    partition: int | None = None


# --- bytes <-> JSON ---------------------------------------------------------------------


def encode_bytes(data: bytes | None) -> str | dict[str, str] | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {B64: base64.b64encode(data).decode("ascii")}


def decode_bytes(item: Any, what: str) -> bytes | None:
    if item is None:
        return None
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, dict) and set(item) == {B64} and isinstance(item[B64], str):
        try:
            return base64.b64decode(item[B64], validate=True)
        except binascii.Error:
            raise RecordingError(f"{what}: invalid base64") from None
    raise RecordingError(f'{what}: expected a string, {{"b64": ...}} or null')


# --- one line ---------------------------------------------------------------------------


def encode_message(message: RecordedMessage) -> bytes:
    """One recording line (without the newline)."""
    return orjson.dumps(
        {
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "timestamp": message.timestamp_ms,
            "timestamp_type": message.timestamp_type,
            "key": encode_bytes(message.key),
            "value": encode_bytes(message.value),
            "headers": [[name, encode_bytes(value)] for name, value in message.headers],
        }
    )


def encode_schema(schema: WriterSchema) -> bytes:
    """A recording's schema line (without the newline)."""
    return orjson.dumps(
        {"schema_id": schema.schema_id, "schema_type": schema.schema_type, "schema": schema.text}
    )


def is_schema_line(item: Any) -> bool:
    """A decoded line is a writer schema: exactly ``schema_id``, ``schema_type``, ``schema``."""
    return isinstance(item, dict) and set(item) == SCHEMA_KEYS


def schema_from_line(item: dict[str, Any], where: str) -> WriterSchema:
    schema_id, kind, text = item["schema_id"], item["schema_type"], item["schema"]
    if isinstance(schema_id, bool) or not isinstance(schema_id, int) or schema_id < 0:
        raise RecordingError(f"{where}: schema_id must be a non-negative integer")
    if not isinstance(kind, str) or not isinstance(text, str):
        raise RecordingError(f"{where}: schema_type and schema must be strings")
    return WriterSchema(schema_id, kind, text)


def is_envelope(item: Any) -> bool:
    """A decoded line is a recording envelope: an object with ``value`` and only envelope keys."""
    return isinstance(item, dict) and "value" in item and set(item) <= ENVELOPE_KEYS


def decode_message(line: bytes, where: str = "line") -> RecordedMessage:
    """Parse one recording line; RecordingError (exit 2) naming ``where`` when it is not one."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RecordingError(f"{where}: not valid JSON: {exc}") from None
    if not is_envelope(item):
        raise RecordingError(f"{where}: not a recorded message (needs 'value', envelope keys only)")
    return message_from_envelope(item, where)


def message_from_envelope(item: dict[str, Any], where: str) -> RecordedMessage:
    timestamp = _optional_int(item.get("timestamp"), f"{where}: timestamp")
    kind = item.get("timestamp_type")
    if kind is not None and kind not in TIMESTAMP_TYPES:
        raise RecordingError(f"{where}: timestamp_type must be one of {', '.join(TIMESTAMP_TYPES)}")
    if kind is None and timestamp is not None:
        kind = "create_time"
    topic = item.get("topic", "")
    if not isinstance(topic, str):
        raise RecordingError(f"{where}: topic must be a string")
    return RecordedMessage(
        topic=topic,
        partition=_optional_int(item.get("partition"), f"{where}: partition") or 0,
        offset=_optional_int(item.get("offset"), f"{where}: offset") or 0,
        timestamp_ms=timestamp,
        timestamp_type=kind if timestamp is not None else None,
        key=decode_bytes(item.get("key"), f"{where}: key"),
        value=decode_bytes(item["value"], f"{where}: value"),
        headers=_decode_headers(item.get("headers"), where),
    )


def _decode_headers(item: Any, where: str) -> tuple[Header, ...]:
    if item is None:
        return ()
    if not isinstance(item, list):
        raise RecordingError(f"{where}: headers must be a list of [name, value] pairs")
    headers: list[Header] = []
    for pair in item:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise RecordingError(f"{where}: each header must be a [name, value] pair")
        headers.append((pair[0], decode_bytes(pair[1], f"{where}: header {pair[0]!r}")))
    return tuple(headers)


def _optional_int(item: Any, what: str) -> int | None:
    if item is None:
        return None
    if isinstance(item, bool) or not isinstance(item, int) or item < 0:
        raise RecordingError(f"{what} must be a non-negative integer")
    return item


# --- whole files ------------------------------------------------------------------------


def read_recording(lines: Iterable[bytes], source: str) -> Iterator[RecordedMessage]:
    """Every message of a recording; blank lines and schema lines are skipped."""
    for item in read_recording_items(lines, source):
        if isinstance(item, RecordedMessage):
            yield item


def read_recording_items(
    lines: Iterable[bytes], source: str
) -> Iterator[RecordedMessage | WriterSchema]:
    """Every message and writer schema of a recording, in file order."""
    for number, line in _numbered(lines):
        where = f"{source}:{number}"
        if line.startswith(b'{"schema_id"'):  # the only lines that start so: see encode_schema
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise RecordingError(f"{where}: not valid JSON: {exc}") from None
            if is_schema_line(item):
                yield schema_from_line(item, where)
                continue
        yield decode_message(line, where)


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """How a file becomes messages."""

    keep_partitions: bool = False
    """Recordings: send each message to its recorded partition (else the key decides)."""
    key_field: str | None = None
    """Plain events: use this field (string or integer) as the Kafka key."""
    timestamp_field: str | None = None
    """Plain events: use this field (epoch milliseconds) as the message timestamp."""


def read_publishable(
    lines: Iterable[bytes], source: str, options: PublishOptions
) -> Iterator[OutgoingMessage]:
    """A recording or a plain events file, told apart by its first non-blank line."""
    recording: bool | None = None
    for number, line in _numbered(lines):
        if recording is None:
            recording = _first_is_envelope(line)
        if recording:
            if _is_schema_text(line):
                continue  # a writer schema: what the registry of the topic holds
            message = decode_message(line, f"{source}:{number}")
            yield OutgoingMessage(
                value=message.value,
                key=message.key,
                headers=message.headers,
                timestamp_ms=message.timestamp_ms,
                partition=message.partition if options.keep_partitions else None,
            )
        else:
            yield plain_event(line, options)


def plain_event(line: bytes, options: PublishOptions) -> OutgoingMessage:
    """A plain event line, published as is; key and timestamp from its fields when asked."""
    if options.key_field is None and options.timestamp_field is None:
        return OutgoingMessage(value=line)
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        event = None  # still published: the worker sends it to the dead-letter topic
    if not isinstance(event, dict):
        return OutgoingMessage(value=line)
    key = event.get(options.key_field) if options.key_field else None
    stamp = event.get(options.timestamp_field) if options.timestamp_field else None
    valid_key = isinstance(key, str | int) and not isinstance(key, bool)
    valid_stamp = isinstance(stamp, int) and not isinstance(stamp, bool) and stamp > 0
    return OutgoingMessage(
        value=line,
        key=str(key).encode("utf-8") if valid_key else None,
        timestamp_ms=stamp if valid_stamp else None,
    )


def _is_schema_text(line: bytes) -> bool:
    if not line.startswith(b'{"schema_id"'):
        return False
    try:
        return is_schema_line(orjson.loads(line))
    except orjson.JSONDecodeError:
        return False


def _first_is_envelope(line: bytes) -> bool:
    try:
        item = orjson.loads(line)
        return is_envelope(item) or is_schema_line(item)
    except orjson.JSONDecodeError:
        return False


def _numbered(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n")
        if line.strip():
            yield number, line
