"""`--output-format avro`: the prediction record's Avro schema, the wire format both ways
(the same values as the JSON record, floats bit for bit), its registration, and `parity`
of a recording of an Avro prediction topic."""

from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastavro import parse_schema
from hypothesis import given
from hypothesis import strategies as st

from examples.stream import generate_labelled_events
from model_bundles.bundle import Bundle
from schemas.errors import BadInputError, RuntimeFailure
from schemas.records import PredictionRecord
from schemas.wire_names import RejectReason
from worker.cli.format_options import register_records
from worker.cli.main import run_cli
from worker.core.events import InputEvent
from worker.core.formats import WriterSchema, schema_id_of
from worker.core.record_avro import (
    PREDICTION_RECORD_SCHEMA,
    SCHEMA_TEXT,
    AvroRecords,
    avro_form,
    json_form,
    subject_of,
)
from worker.core.recording import RecordedMessage, encode_message, encode_schema
from worker.core.scoring import BatchScorer
from worker.kafka.registry import RegistrySettings
from worker.kafka.types import FailureKind, KafkaFailure, Outgoing
from worker.live.delivery import DeliveryBatch
from worker.live.loop import _in_avro
from worker.live.outputs import OutputGuard
from worker.logs import EventLog
from worker.replay.parity import compare

MODEL = {"name": "m", "version": "1", "digest": "sha256:aa"}


def _bits(value: Any) -> Any:
    """Floats by their bits, everywhere in a record, so == compares bit for bit."""
    if isinstance(value, float):
        return ("f", struct.pack("<d", value))
    if isinstance(value, dict):
        return {k: _bits(v) for k, v in value.items()}
    return value


def _scored_records(bundle: Bundle, n: int = 300) -> list[bytes]:
    lines = [line for line, reason in generate_labelled_events(n, 3) if reason is None]
    events = [
        InputEvent(value=line, key=b"k", topic="in", partition=2, offset=i, timestamp_ms=1_700)
        for i, line in enumerate(lines)
    ]
    scored = BatchScorer(bundle).score(events)
    assert scored.records and not scored.rejected
    return scored.records


def test_the_schema_is_valid_avro_and_mirrors_the_record_contract() -> None:
    parse_schema(PREDICTION_RECORD_SCHEMA)
    assert json.loads(SCHEMA_TEXT) == PREDICTION_RECORD_SCHEMA
    fields = [f["name"] for f in PREDICTION_RECORD_SCHEMA["fields"]]
    assert set(fields) == set(PredictionRecord.model_fields)
    assert subject_of("predictions") == "predictions-value"


def test_real_records_decode_to_the_json_records_byte_for_byte(penguins_bundle: Bundle) -> None:
    records = _scored_records(penguins_bundle)
    avro = AvroRecords({"out": 258})
    for record in records:
        value = avro.encode("out", record)
        assert value[:5] == b"\x00\x00\x00\x01\x02" and schema_id_of(value) == 258
        decoded = avro.decode(value)
        assert decoded is not None
        # orjson writes floats as their shortest round-trip text: equal bytes, equal bits
        assert orjson.dumps(decoded) == record
        assert _bits(decoded) == _bits(orjson.loads(record))


finite = st.floats(allow_nan=False, allow_infinity=False)
labels = st.text(min_size=1, max_size=5)
predictions = st.one_of(labels, st.booleans(), st.integers(-(2**63), 2**63 - 1), finite)
sources = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "topic": labels,
            "partition": st.integers(0, 2**31 - 1),
            "offset": st.integers(0, 2**63 - 1),
            "timestamp": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
        }
    ),
)


@given(
    event_id=st.text(),
    prediction=predictions,
    key=st.sampled_from(["scores", "decision"]),
    scores=st.one_of(st.none(), st.dictionaries(labels, finite, max_size=4)),
    source=sources,
)
def test_any_record_round_trips_with_its_types_and_float_bits(
    event_id: str, prediction: Any, key: str, scores: Any, source: Any
) -> None:
    if key == "decision" and scores is None:
        key = "scores"  # a decision record always has its values (a classifier's)
    record = {"event_id": event_id, "prediction": prediction, key: scores, "model": MODEL}
    record["source"] = source
    encoded = orjson.dumps(record)
    decoded = AvroRecords({"t": 1}).decode(AvroRecords({"t": 1}).encode("t", encoded))
    assert decoded is not None
    assert list(decoded) == list(record)
    assert type(decoded["prediction"]) is type(prediction)
    assert _bits(decoded) == _bits(orjson.loads(encoded))


def test_non_finite_outputs_json_writes_as_null_are_nan_in_avro() -> None:
    record = {"event_id": "e", "prediction": None, "scores": {"a": None, "b": 1.0}}
    form = avro_form({**record, "model": MODEL, "source": None})
    assert math.isnan(form["prediction"]) and math.isnan(form["scores"]["a"])
    assert form["decision"] is None and form["scores"]["b"] == 1.0
    back = json_form(form)
    assert "decision" not in back and list(back) == [
        "event_id",
        "prediction",
        "scores",
        "model",
        "source",
    ]


def test_only_record_topics_are_encoded_dead_letters_stay_raw() -> None:
    avro = AvroRecords({"out": 5})
    record = orjson.dumps({"event_id": "e", "prediction": "a", "scores": None, "model": MODEL})
    messages = [Outgoing("out", record, b"k"), Outgoing("dlq", b"\x00raw bytes", b"k")]
    out, dead = _in_avro(messages, avro)
    assert schema_id_of(out.value or b"") == 5 and out.key == b"k"
    assert dead == messages[1]
    assert avro.decode(b'{"a": 1}') is None and avro.decode(b"\x00\x00\x00\x00\x09x") is None


def test_a_refused_avro_record_sends_its_event_to_the_dlq() -> None:
    avro = AvroRecords({"out": 5})
    source = {"topic": "in", "partition": 0, "offset": 11, "timestamp": None}
    json_record = orjson.dumps(
        {"event_id": "e", "prediction": "a", "scores": None, "model": MODEL, "source": source}
    )
    value = avro.encode("out", json_record)
    guard = OutputGuard("dlq", EventLog(io.StringIO()))
    problem = KafkaFailure(FailureKind.OTHER, "MSG_SIZE_TOO_LARGE", "too large")
    problem.message = Outgoing("out", value, b"k")
    event = InputEvent(b"{}", b"k", "in", 0, 11)
    guard.rolled_back(DeliveryBatch([Outgoing("out", value, b"k")], {}, [event]), [problem])
    assert list(guard.refused) == [("in", 0, 11)]
    assert RejectReason.OUTPUT_REJECTED.value == "output_rejected"


def _recording(path: Path, values: list[bytes], schema_id: int | None) -> Path:
    lines = []
    if schema_id is not None:
        lines.append(encode_schema(WriterSchema(schema_id, "AVRO", SCHEMA_TEXT)))
    lines += [
        encode_message(RecordedMessage("out", 0, i, None, "create_time", b"k", v))
        for i, v in enumerate(values)
    ]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_parity_decodes_a_recording_of_an_avro_topic(
    penguins_bundle: Bundle, tmp_path: Path
) -> None:
    records = _scored_records(penguins_bundle, 100)
    avro = AvroRecords({"out": 9})
    values = [avro.encode("out", r) for r in records]
    result = compare(records, _recording(tmp_path / "a.jsonl", values, 9).read_bytes().split(b"\n"))
    assert result.ok and result.matched == len(records)

    # one score changed in its last bit: parity sees it through Avro
    changed = orjson.loads(records[0])
    label = next(iter(changed["scores"]))
    changed["scores"][label] = math.nextafter(changed["scores"][label], 2.0)
    values[0] = avro.encode("out", orjson.dumps(changed))
    result = compare(records, _recording(tmp_path / "b.jsonl", values, 9).read_bytes().split(b"\n"))
    assert result.mismatched == 1

    expected = tmp_path / "expected.jsonl"
    expected.write_bytes(b"".join(r + b"\n" for r in records))
    bare = _recording(tmp_path / "bare.jsonl", values, None)
    with pytest.raises(BadInputError, match="--value-format avro"):
        compare(records, bare.read_bytes().split(b"\n"))
    assert run_cli(["parity", "--expected", str(expected), "--actual", str(bare)]) == 2


def test_registration_under_the_topic_subject_and_a_registry_away(monkeypatch: Any) -> None:
    registered: list[tuple[str, WriterSchema]] = []

    def register(_self: Any, subject: str, schema: WriterSchema) -> int:
        registered.append((subject, schema))
        return 40 + len(registered)

    monkeypatch.setattr("worker.kafka.registry.RegistrySchemas.register", register)
    avro = register_records(RegistrySettings(url="http://r:1"), ["out", "chal"], 1.0)
    assert avro.schema_ids == {"out": 41, "chal": 42}
    assert [(s, w.schema_type, w.text) for s, w in registered] == [
        ("out-value", "AVRO", SCHEMA_TEXT),
        ("chal-value", "AVRO", SCHEMA_TEXT),
    ]
    monkeypatch.undo()
    with pytest.raises(RuntimeFailure, match="registering the prediction record schema"):
        register_records(RegistrySettings(url="http://127.0.0.1:9"), ["out"], 0.5)


def test_output_format_option_errors(
    penguins_bundle_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    from worker.live.settings import WorkerSettings

    base = {"bundle": "b", "bootstrap_servers": "k:1", "input_topic": "i", "output_topic": "o"}
    with pytest.raises(ValueError, match="--output-format avro needs --schema-registry-url"):
        WorkerSettings(**base, output_format="avro").registry()
    assert WorkerSettings(**base, output_format="avro", schema_registry_url="http://r:1").registry()
    replay = ["replay", "--bundle", str(penguins_bundle_dir), "--bootstrap-servers", "k:1"]
    replay += ["--topic", "t", "--output-format", "avro"]
    assert run_cli([*replay, "--output", str(tmp_path / "o")]) == 2
    assert "needs --schema-registry-url" in capsys.readouterr().err
    url = ["--schema-registry-url", "http://r:1"]
    assert run_cli([*replay, *url, "--output", str(tmp_path / "o")]) == 2
    assert "is for --output-topic" in capsys.readouterr().err
