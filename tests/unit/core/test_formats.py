"""Avro and JSON Schema values (worker.core.formats): the same records as JSON, the three
dead-letter reasons, schema evolution, recordings that keep their writer schemas."""

from __future__ import annotations

import io
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastavro import parse_schema, schemaless_writer

from examples.stream import generate_labelled_events
from examples.wire import (
    JSON_SCHEMA,
    SCHEMA_V1,
    SCHEMA_V2,
    SCHEMA_V3,
    avro_value,
    bad_value,
    events_of,
    header,
    json_schema_value,
)
from model_bundles.bundle import Bundle
from worker.cli.main import run_cli
from worker.core.events import InputEvent
from worker.core.formats import (
    KnownSchemas,
    SchemaNotFound,
    ValueFormat,
    WireDecoder,
    WriterSchema,
    learn_all,
    schema_id_of,
)
from worker.core.recording import (
    PublishOptions,
    RecordedMessage,
    encode_message,
    encode_schema,
    read_publishable,
    read_recording,
    read_recording_items,
)
from worker.core.scoring import BatchScorer


def _events(n: int, seed: int = 1) -> list[dict[str, Any]]:
    return events_of([line for line, reason in generate_labelled_events(n, seed) if reason is None])


def _avro_decoder(*schemas: tuple[int, dict[str, Any]]) -> WireDecoder:
    decoder = WireDecoder(ValueFormat.AVRO)
    for schema_id, schema in schemas:
        decoder.learn(WriterSchema(schema_id, "AVRO", json.dumps(schema)))
    return decoder


def _inputs(values: list[bytes]) -> list[InputEvent]:
    return [InputEvent(value=v, topic="t", offset=i, timestamp_ms=7) for i, v in enumerate(values)]


def test_the_header_is_magic_byte_and_big_endian_id() -> None:
    assert schema_id_of(b"\x00\x00\x00\x01\x02rest") == 258
    assert schema_id_of(b"\x00\xff\xff\xff\xff") == 2**32 - 1
    assert schema_id_of(b"\x01\x00\x00\x00\x01x") is None
    assert schema_id_of(b"\x00\x00\x01") is None
    assert schema_id_of(b'{"a": 1}') is None


def test_avro_events_give_the_json_records_byte_for_byte(penguins_bundle: Bundle) -> None:
    """Same events, written as JSON and as Avro (two compatible versions): same records."""
    events = _events(400)
    json_values = [orjson.dumps(e) for e in events]
    avro_values = [
        avro_value(1, SCHEMA_V1, e) if i % 2 else avro_value(2, SCHEMA_V2, e)
        for i, e in enumerate(events)
    ]
    plain = BatchScorer(penguins_bundle).score(_inputs(json_values))
    decoder = _avro_decoder((1, SCHEMA_V1), (2, SCHEMA_V2))
    avro = BatchScorer(penguins_bundle, decoder=decoder).score(_inputs(avro_values))
    assert not plain.rejected and not avro.rejected
    assert avro.records == plain.records


def test_null_branches_are_missing_values_and_ints_stay_ints() -> None:
    decoder = _avro_decoder((1, SCHEMA_V1))
    event = {**_events(1)[0], "island": None, "body_mass_g": 4000, "bill_depth_mm": 15.0}
    decoded = decoder.decode(avro_value(1, SCHEMA_V1, event))
    assert decoded == event
    assert isinstance(decoded, dict)
    assert type(decoded["body_mass_g"]) is int and type(decoded["bill_depth_mm"]) is float


def _write(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, parse_schema(schema), record)
    return header(5) + buffer.getvalue()


def test_logical_types_read_as_docs_say() -> None:
    def decimal(scale: int) -> dict[str, Any]:
        return {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": scale}

    schema = {
        "type": "record",
        "name": "L",
        "fields": [
            {"name": "d2", "type": decimal(2)},
            {"name": "d0", "type": decimal(0)},
            {"name": "opt", "type": ["null", decimal(1)]},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "kind", "type": {"type": "enum", "name": "K", "symbols": ["A", "B"]}},
            {"name": "f32", "type": "float"},
        ],
    }  # fmt: skip
    from datetime import UTC, date, datetime

    stamp = datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    value = _write(
        schema,
        {
            "d2": Decimal("12.50"),
            "d0": Decimal("42"),
            "opt": None,
            "day": date(2025, 1, 1),
            "ms": stamp,
            "us": stamp,
            "id": "6f1c4a3e-0000-4000-8000-000000000001",
            "kind": "B",
            "f32": 0.1,
        },
    )
    decoder = WireDecoder(ValueFormat.AVRO)
    decoder.learn(WriterSchema(5, "AVRO", json.dumps(schema)))
    decoded = decoder.decode(value)
    assert decoded == {
        "d2": 12.5,
        "d0": 42,
        "opt": None,
        "day": 20089,
        "ms": 1735689600123,
        "us": 1735689600123456,
        "id": "6f1c4a3e-0000-4000-8000-000000000001",
        "kind": "B",
        "f32": 0.10000000149011612,
    }
    assert isinstance(decoded, dict) and type(decoded["d0"]) is int


def test_each_dead_letter_reason(penguins_bundle: Bundle) -> None:
    good = avro_value(1, SCHEMA_V1, _events(1)[0])
    rng = random.Random(1)
    decoder = _avro_decoder((1, SCHEMA_V1))
    decoder.learn(WriterSchema(2, "JSON", json.dumps(JSON_SCHEMA)))
    decoder.missing(999_999, "schema id 999999: the registry at http://r has none")
    values: list[bytes | None] = [
        bad_value("wrong_format", good, rng),
        bad_value("unknown_schema", good, rng),
        good[:-3],
        good + b"\x01",
        header(2) + good[5:],  # a JSON Schema id on an Avro topic
        header(77) + good[5:],  # an id nobody fetched
        None,
        good,
    ]
    scorer = BatchScorer(penguins_bundle, decoder=decoder)
    result = scorer.score([InputEvent(value=v, offset=i) for i, v in enumerate(values)])
    reasons = {r.index: r.rejection.reason.value for r in result.rejected}
    assert reasons == {
        0: "wrong_format",
        1: "unknown_schema",
        2: "invalid_payload",
        3: "invalid_payload",
        4: "wrong_format",
        5: "unknown_schema",
        6: "wrong_format",
    }
    assert result.indices == [7]


def test_json_schema_values(penguins_bundle: Bundle) -> None:
    events = _events(50)
    decoder = WireDecoder(ValueFormat.JSON_SCHEMA)
    decoder.learn(WriterSchema(3, "JSON", json.dumps(JSON_SCHEMA)))
    decoder.learn(WriterSchema(4, "AVRO", json.dumps(SCHEMA_V1)))
    values = [json_schema_value(3, e) for e in events]
    plain = BatchScorer(penguins_bundle).score(_inputs([orjson.dumps(e) for e in events]))
    wire = BatchScorer(penguins_bundle, decoder=decoder).score(_inputs(values))
    assert wire.records == plain.records
    bad = [header(3) + b"{not json", header(4) + b"{}", orjson.dumps(events[0])]
    assert [
        r.rejection.reason.value
        for r in BatchScorer(penguins_bundle, decoder=decoder).score(_inputs(bad)).rejected
    ] == ["invalid_payload", "wrong_format", "wrong_format"]


def test_a_version_without_a_needed_feature_is_missing_feature(penguins_bundle: Bundle) -> None:
    events = _events(30)
    decoder = _avro_decoder((1, SCHEMA_V1), (2, SCHEMA_V2), (3, SCHEMA_V3))
    values = [
        avro_value(1 + i % 3, [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3][i % 3], e)
        for i, e in enumerate(events)
    ]
    result = BatchScorer(penguins_bundle, decoder=decoder).score(_inputs(values))
    assert {r.index for r in result.rejected} == {i for i in range(30) if i % 3 == 2}
    assert {r.rejection.reason.value for r in result.rejected} == {"missing_feature"}
    assert all("'sex'" in r.rejection.detail for r in result.rejected)


def test_schemas_are_asked_once_and_missing_ids_remembered() -> None:
    asked: list[int] = []

    class Registry:
        def get(self, schema_id: int) -> WriterSchema:
            asked.append(schema_id)
            if schema_id == 1:
                return WriterSchema(1, "AVRO", json.dumps(SCHEMA_V1))
            raise SchemaNotFound("the registry has none")

    decoder = WireDecoder(ValueFormat.AVRO)
    values = [avro_value(1, SCHEMA_V1, _events(1)[0]), header(9) + b"x", b"plain"]
    for _ in range(3):
        learn_all(decoder, Registry(), decoder.wanted(values))
    assert asked == [1, 9]
    assert decoder.wanted(values) == set()
    assert isinstance(decoder.decode(values[0]), dict)
    rejection = decoder.decode(values[1])
    assert not isinstance(rejection, dict) and rejection.reason.value == "unknown_schema"
    known = KnownSchemas({1: decoder.schemas[1]}, None)
    with pytest.raises(SchemaNotFound, match="not in the recording"):
        known.get(2)


def test_recordings_keep_writer_schemas_and_message_readers_skip_them() -> None:
    schema = WriterSchema(1, "AVRO", json.dumps(SCHEMA_V1))
    value = avro_value(1, SCHEMA_V1, _events(1)[0])
    message = RecordedMessage("t", 0, 3, 5, "create_time", b"k", value)
    lines = [encode_schema(schema), encode_message(message)]
    assert list(read_recording_items(lines, "r")) == [schema, message]
    assert list(read_recording(lines, "r")) == [message]
    published = list(read_publishable(lines, "r", PublishOptions()))
    assert [m.value for m in published] == [value]


def _record_file(path: Path, messages: list[RecordedMessage], schemas: list[WriterSchema]) -> Path:
    lines = [encode_schema(s) for s in schemas] + [encode_message(m) for m in messages]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_score_of_a_recording_needs_no_registry(
    penguins_bundle: Bundle, penguins_bundle_dir: Path, tmp_path: Path
) -> None:
    """`score --value-format avro` of a recording: the live worker's records, source and all."""
    events = _events(60)
    messages = [
        RecordedMessage("in", i % 2, i // 2, 1000 + i, "create_time", None, value)
        for i, value in enumerate(avro_value(1, SCHEMA_V1, e) for e in events)
    ]
    schemas = [WriterSchema(1, "AVRO", json.dumps(SCHEMA_V1))]
    recording = _record_file(tmp_path / "rec.jsonl", messages, schemas)
    out = tmp_path / "out.jsonl"
    args = ["score", "--bundle", str(penguins_bundle_dir), "--input", str(recording)]
    assert run_cli([*args, "--output", str(out), "--value-format", "avro"]) == 0
    live = BatchScorer(penguins_bundle, decoder=_avro_decoder((1, SCHEMA_V1))).score(
        [
            InputEvent(m.value, m.key, m.topic, m.partition, m.offset, m.timestamp_ms)
            for m in messages
        ]
    )
    assert out.read_bytes() == b"".join(r + b"\n" for r in live.records)
    # without the schema line, every event is unknown_schema: exit 1, nothing scored
    bare = _record_file(tmp_path / "bare.jsonl", messages, [])
    assert run_cli([*args[:-1], str(bare), "--output", str(out), "--value-format", "avro"]) == 1


def test_format_option_errors(penguins_bundle_dir: Path, tmp_path: Path, capsys: Any) -> None:
    base = ["score", "--bundle", str(penguins_bundle_dir), "--input", str(tmp_path / "x")]
    base += ["--output", str(tmp_path / "o")]
    assert run_cli([*base, "--schema-registry-url", "http://r:1"]) == 2
    said = capsys.readouterr().err
    assert "is for --value-format avro or json-schema" in said
    assert "--output-format" not in said  # score has no such option: never advise it
    assert run_cli([*base, "--value-format", "protobuf"]) == 2
    assert run_cli([*base, "--value-format", "avro", "--schema-registry-basic-auth", "u:p"]) == 2
    assert "need --schema-registry-url" in capsys.readouterr().err


# --- the live loop and a registry that does not answer -----------------------------------


def _worker_with_registry(
    bundle: Bundle, values: list[bytes], registry: Any, clock: Any
) -> tuple[Any, Any, Any, Any]:
    from tests.support.loop_fakes import (
        Connector,
        FakeSource,
        RecordingObserver,
        lines_of,
        memory_log,
    )
    from worker.live.loop import Worker
    from worker.live.settings import WorkerSettings

    settings = WorkerSettings(
        bundle="b",
        bootstrap_servers="k:1",
        input_topic="in",
        output_topic="out",
        dlq_topic="dlq",
        instance_id="t",
        max_events=len(values),
        broker_timeout_s=60,
        retry_backoff_initial_ms=1,
        retry_backoff_max_ms=1,
        value_format="avro",
        schema_registry_url="http://registry:8081",
    )
    source = FakeSource({0: values})
    connector, observer = Connector(source), RecordingObserver()
    log, buffer = memory_log()
    scorer = BatchScorer(bundle, decoder=WireDecoder(ValueFormat.AVRO))
    worker = Worker(settings, scorer, connector, log, observer, clock, schemas=registry)
    return worker, connector, observer, lambda: lines_of(buffer)


class _FlakyRegistry:
    """Does not answer ``down`` times (each costs 10 s of the fake clock), then does."""

    def __init__(self, clock: Any, down: int) -> None:
        self.clock, self.down, self.calls = clock, down, 0

    def get(self, schema_id: int) -> WriterSchema:
        from worker.core.formats import RegistryUnavailable

        self.calls += 1
        self.clock.now += 10
        if self.calls <= self.down:
            raise RegistryUnavailable("schema registry http://registry:8081: ConnectError")
        return WriterSchema(schema_id, "AVRO", json.dumps(SCHEMA_V1))


def test_a_registry_away_makes_the_worker_wait_not_dead_letter(penguins_bundle: Bundle) -> None:
    from tests.support.loop_fakes import Clock

    clock = Clock()
    values = [avro_value(1, SCHEMA_V1, e) for e in _events(25)]
    registry = _FlakyRegistry(clock, down=3)
    worker, _connector, observer, log_lines = _worker_with_registry(
        penguins_bundle, values, registry, clock
    )
    summary = worker.run()
    assert summary.produced == len(values) and not summary.rejected
    assert registry.calls == 4  # three unanswered, then once: the schema is kept
    assert [e["event"] for e in log_lines() if "registry" in e["event"]] == [
        "registry_unavailable",
        "registry_available",
    ]
    assert False in observer.ready and observer.ready[-1] is False  # stopped: not ready


def test_a_registry_away_past_the_broker_timeout_exits_with_nothing_delivered(
    penguins_bundle: Bundle,
) -> None:
    from schemas.errors import RuntimeFailure
    from tests.support.loop_fakes import Clock

    clock = Clock()
    values = [avro_value(1, SCHEMA_V1, e) for e in _events(10)]
    worker, connector, _observer, _lines = _worker_with_registry(
        penguins_bundle, values, _FlakyRegistry(clock, down=1000), clock
    )
    with pytest.raises(RuntimeFailure, match="schema registry unreachable for 60s"):
        worker.run()
    assert connector.fake_delivery.delivered == []
    assert connector.offsets().committed_offsets == {}


def test_run_settings_want_a_registry_for_wire_formats_only() -> None:
    from worker.live.settings import WorkerSettings

    base = {"bundle": "b", "bootstrap_servers": "k:1", "input_topic": "i", "output_topic": "o"}
    with pytest.raises(ValueError, match="needs --schema-registry-url"):
        WorkerSettings(**base, value_format="avro").registry()
    with pytest.raises(ValueError, match="is for --value-format avro or json-schema"):
        WorkerSettings(**base, schema_registry_url="http://r:8081").registry()
    secret = WorkerSettings(
        **base,
        value_format="json-schema",
        schema_registry_url="https://user:hunter2@r:8081",
        schema_registry_basic_auth="user:hunter2",
    )
    assert "hunter2" not in str(secret.masked()) and "hunter2" not in repr(secret)
    registry = secret.registry()
    assert registry is not None and "hunter2" not in str(registry.masked()) + repr(registry)
    assert registry.client_config()["basic.auth.user.info"] == "user:hunter2"


def test_a_stop_while_waiting_for_the_registry_ends_the_run_with_nothing_committed(
    penguins_bundle: Bundle,
) -> None:
    from tests.support.loop_fakes import Clock

    clock = Clock()
    values = [avro_value(1, SCHEMA_V1, e) for e in _events(10)]
    registry = _FlakyRegistry(clock, down=1000)
    worker, connector, _observer, log_lines = _worker_with_registry(
        penguins_bundle, values, registry, clock
    )
    original = registry.get

    def get_then_stop(schema_id: int) -> WriterSchema:
        worker.request_stop("signal")  # SIGTERM while the registry is away
        return original(schema_id)

    registry.get = get_then_stop  # type: ignore[method-assign]
    summary = worker.run()  # no exception: a clean stop, the batch read again later
    assert summary.stop_reason == "signal" and summary.consumed == 0
    assert connector.fake_delivery.delivered == []
    assert connector.offsets().committed_offsets == {}
    assert [e["event"] for e in log_lines()][-1] == "stop"


def test_bundle_check_of_an_avro_recording_sees_a_version_without_a_feature(
    penguins_bundle_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    """`bundle check --value-format avro`: the v3 writer schema drops `sex`, a feature."""
    events = _events(40)
    messages = [
        RecordedMessage("in", 0, i, None, None, None, value)
        for i, value in enumerate(
            avro_value(3, SCHEMA_V3, e) if i % 4 else avro_value(1, SCHEMA_V1, e)
            for i, e in enumerate(events)
        )
    ]
    schemas = [WriterSchema(1, "AVRO", json.dumps(SCHEMA_V1))]
    schemas.append(WriterSchema(3, "AVRO", json.dumps(SCHEMA_V3)))
    recording = _record_file(tmp_path / "rec.jsonl", messages, schemas)
    args = ["bundle", "check", str(penguins_bundle_dir), "--events", str(recording)]
    assert run_cli([*args, "--value-format", "avro"]) == 1
    out = capsys.readouterr().out
    assert "feature 'sex' is absent from most events" in out
    assert "missing_feature" in out


def test_the_compose_avro_producer_recording_is_keyed_by_event_id(tmp_path: Path) -> None:
    """`python -m examples.wire` (compose's producer-avro): keyed, so events spread over
    every partition; the poison stays its JSON bytes."""
    from examples.wire import main as wire_main

    lines = [line for line, _ in generate_labelled_events(40, 5, poison_rate=0.1)]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in lines))
    out = tmp_path / "rec.jsonl"
    assert wire_main(["--input", str(events), "--output", str(out), "--key-field", "event_id"]) == 0
    items = list(read_recording_items(iter(out.read_bytes().splitlines()), str(out)))
    assert isinstance(items[0], WriterSchema)
    messages = [m for m in items if isinstance(m, RecordedMessage)]
    assert len(messages) == len(lines)
    avro = [m for m in messages if schema_id_of(m.value or b"") is not None]
    assert avro and all(m.key == str(_event_of(m, items[0])["event_id"]).encode() for m in avro)
    assert any(schema_id_of(m.value or b"") is None for m in messages)  # poison kept as JSON


def _event_of(message: RecordedMessage, schema: WriterSchema) -> dict[str, Any]:
    decoder = WireDecoder(ValueFormat.AVRO)
    decoder.learn(schema)
    decoded = decoder.decode(message.value or b"")
    assert isinstance(decoded, dict)
    return decoded
