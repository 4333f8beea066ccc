"""The recording format: lossless round trips, readable UTF-8, base64 for the rest."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.core.recording import (
    OutgoingMessage,
    PublishOptions,
    RecordedMessage,
    RecordingError,
    decode_message,
    encode_message,
    read_publishable,
    read_recording,
)

optional_bytes = st.none() | st.binary(max_size=64) | st.text(max_size=32).map(str.encode)
stamps = st.one_of(
    st.tuples(st.none(), st.none()),
    st.tuples(st.integers(0, 2**62), st.sampled_from(["create_time", "log_append_time"])),
)


@st.composite
def messages(draw: st.DrawFn) -> RecordedMessage:
    stamp, kind = draw(stamps)
    return RecordedMessage(
        topic=draw(st.text(max_size=20)),
        partition=draw(st.integers(0, 10_000)),
        offset=draw(st.integers(0, 2**62)),
        timestamp_ms=stamp,
        timestamp_type=kind,
        key=draw(optional_bytes),
        value=draw(optional_bytes),
        headers=tuple(draw(st.lists(st.tuples(st.text(max_size=10), optional_bytes), max_size=5))),
    )


@given(messages())
def test_every_message_round_trips_exactly(message: RecordedMessage) -> None:
    line = encode_message(message)
    assert b"\n" not in line  # one message, one line
    assert decode_message(line) == message


@given(st.lists(messages(), max_size=8))
def test_a_file_of_messages_round_trips_in_order(recorded: list[RecordedMessage]) -> None:
    data = b"".join(encode_message(m) + b"\n" for m in recorded)
    assert list(read_recording(data.splitlines(keepends=True), "f")) == recorded


@given(messages())
def test_publishing_a_recording_keeps_key_value_headers_and_timestamp(
    message: RecordedMessage,
) -> None:
    lines = [encode_message(message) + b"\n"]
    kept = list(read_publishable(lines, "f", PublishOptions(keep_partitions=True)))
    assert kept == [
        OutgoingMessage(
            value=message.value,
            key=message.key,
            headers=message.headers,
            timestamp_ms=message.timestamp_ms,
            partition=message.partition,
        )
    ]
    default = next(read_publishable(lines, "f", PublishOptions()))
    assert default.partition is None  # the key decides, unless asked to keep partitions


def test_utf8_is_readable_and_other_bytes_are_base64_with_a_marker() -> None:
    message = RecordedMessage(
        topic="t",
        partition=1,
        offset=7,
        timestamp_ms=1_735_689_600_000,
        timestamp_type="create_time",
        key=b"\xff\x00k",
        value='{"island": "Biscoe", "note": "caf\u00e9"}'.encode(),
        headers=(("trace", b"abc"), ("trace", b"\xfe\xff"), ("empty", b""), ("null", None)),
    )
    line = encode_message(message)
    item = orjson.loads(line)
    assert list(item) == [
        "topic",
        "partition",
        "offset",
        "timestamp",
        "timestamp_type",
        "key",
        "value",
        "headers",
    ]
    assert item["key"] == {"b64": base64.b64encode(b"\xff\x00k").decode()}
    assert item["value"] == '{"island": "Biscoe", "note": "caf\u00e9"}'
    assert item["headers"] == [
        ["trace", "abc"],
        ["trace", {"b64": "/v8="}],
        ["empty", ""],
        ["null", None],
    ]
    assert decode_message(line) == message


def test_a_hand_written_line_needs_only_a_value() -> None:
    message = decode_message(b'{"value": "{}", "timestamp": 5}')
    assert message == RecordedMessage("", 0, 0, 5, "create_time", None, b"{}", ())


def test_plain_event_files_are_published_line_by_line() -> None:
    lines = [
        b'{"event_id": "a", "ts": 1735689600000, "island": "Dream"}\n',
        b"\n",  # blank lines are skipped, as by `score`
        b'{"event_id": 7, "ts": "soon"}\r\n',
        b'{"event_id": "c", truncated\n',  # still published: the worker dead-letters it
    ]
    options = PublishOptions(key_field="event_id", timestamp_field="ts")
    out = list(read_publishable(lines, "events.jsonl", options))
    assert out == [
        OutgoingMessage(value=lines[0].rstrip(), key=b"a", timestamp_ms=1_735_689_600_000),
        OutgoingMessage(value=b'{"event_id": 7, "ts": "soon"}', key=b"7"),
        OutgoingMessage(value=b'{"event_id": "c", truncated'),
    ]
    assert [m.value for m in read_publishable(lines, "e", PublishOptions())] == [
        m.value for m in out
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"value": {"b64": "***"}}', "value: invalid base64"),
        (b'{"value": 3}', 'value: expected a string, {"b64": ...} or null'),
        (b'{"value": "x", "headers": [["a"]]}', "each header must be a [name, value] pair"),
        (b'{"value": "x", "partition": -1}', "partition must be a non-negative integer"),
        (b'{"value": "x", "timestamp": 1, "timestamp_type": "wall"}', "timestamp_type must be"),
    ],
)
def test_a_bad_recording_line_names_file_line_and_problem(line: bytes, problem: str) -> None:
    good = encode_message(RecordedMessage("t", 0, 0, None, None, None, b"{}"))
    with pytest.raises(RecordingError) as raised:
        list(read_publishable([good + b"\n", line + b"\n"], "rec.jsonl", PublishOptions()))
    assert str(raised.value).startswith("rec.jsonl:2: ")
    assert problem in str(raised.value)
