"""`score --rejects` (issue 28): where each rejected event was, named right, and its value
exactly. A JSONL events file: its ``line``; a recording: ``topic``, ``partition`` and
``offset`` (it was the offset, written as ``line``). A value that is not UTF-8 is the
recording's ``{"b64": ...}``, not a lossy decoding."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import orjson

from examples.wire import SCHEMA_V1
from worker.cli.main import run_cli
from worker.core.formats import WriterSchema
from worker.core.recording import RecordedMessage, encode_message, encode_schema

PENGUIN = {
    "id": "p1",
    "island": "Biscoe",
    "bill_length_mm": 45.1,
    "bill_depth_mm": 14.5,
    "flipper_length_mm": 215.0,
    "body_mass_g": 5000.0,
    "sex": "female",
}


def _rejects(bundle: Path, tmp_path: Path, source: Path, *extra: str) -> list[dict[str, object]]:
    rejects = tmp_path / "rejects.jsonl"
    args = ["score", "--bundle", str(bundle), "--input", str(source)]
    run_cli([*args, "--output", str(tmp_path / "out.jsonl"), "--rejects", str(rejects), *extra])
    return [orjson.loads(line) for line in rejects.read_bytes().splitlines()]


def test_a_recording_s_rejects_give_topic_partition_offset_and_exact_bytes(
    penguins_bundle_dir: Path, tmp_path: Path
) -> None:
    bad = b"\xff\xfe not avro"  # no Confluent header, and not UTF-8
    messages = [
        RecordedMessage("in", 3, 42, 1001, "create_time", None, bad),
    ]
    lines = [encode_schema(WriterSchema(1, "AVRO", json.dumps(SCHEMA_V1)))]
    lines += [encode_message(m) for m in messages]
    recording = tmp_path / "rec.jsonl"
    recording.write_bytes(b"".join(line + b"\n" for line in lines))

    (reject,) = _rejects(penguins_bundle_dir, tmp_path, recording, "--value-format", "avro")
    assert "line" not in reject
    assert (reject["topic"], reject["partition"], reject["offset"]) == ("in", 3, 42)
    assert reject["value"] == {"b64": base64.b64encode(bad).decode()}


def test_an_events_file_s_rejects_give_the_line_and_exact_bytes(
    penguins_bundle_dir: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(PENGUIN) + b"\n\n" + b'{"id": "\xff"}\n')
    (reject,) = _rejects(penguins_bundle_dir, tmp_path, events)
    assert reject["line"] == 3 and reject["reason"] == "invalid_json"
    assert reject["value"] == {"b64": base64.b64encode(b'{"id": "\xff"}').decode()}
