"""`--output-format avro` on the real broker and the real Schema Registry (rivven-schema):
records in the Confluent wire format under `<topic>-value`, decoding (with the registry's
schema and fastavro alone) to exactly the research records' values, floats bit for bit;
`record` + `parity` and `replay --output-topic` agree; a registry down at start is exit 3."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastavro import parse_schema, schemaless_reader
from kafka_broker import TopicFactory, produce
from schema_registry import latest_id, session_registry_url
from worker_harness import SCORING_WORKER, Topics, WorkerProcess, demo_bundle, make_stream
from worker_verify import GroupWatch, input_ends, read_predictions, read_with_headers

from harness.ports import free_port
from worker.core.formats import schema_id_of

EVENTS = 1_500


@pytest.fixture(scope="module")
def registry_url() -> str:
    return session_registry_url()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [SCORING_WORKER, *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _bits(value: Any) -> Any:
    if isinstance(value, float):
        return struct.pack("<d", value)
    if isinstance(value, dict):
        return {k: _bits(v) for k, v in value.items()}
    return value


def _registry_schema(url: str, schema_id: int) -> Any:
    with urllib.request.urlopen(f"{url}/schemas/ids/{schema_id}", timeout=10) as response:
        return parse_schema(json.loads(json.loads(response.read())["schema"]))


def _decode(schema: Any, value: bytes) -> dict[str, Any]:
    stream = io.BytesIO(value)
    stream.seek(5)
    record: dict[str, Any] = schemaless_reader(stream, schema, None)  # type: ignore[assignment]
    assert stream.tell() == len(value)
    return record


def test_avro_records_are_the_json_records_values_bit_for_bit(
    bootstrap: str, registry_url: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    topics = Topics(input=topic_factory(2), output=topic_factory(2), dlq=topic_factory(1))
    stream = make_stream(tmp_path, EVENTS, 51, poison_rate=0.02)
    research_path = tmp_path / "research.jsonl"
    bundle = ("--bundle", str(demo_bundle()))
    cli("score", *bundle, "--input", str(stream.path), "--output", str(research_path))
    research = {r["event_id"]: r for r in map(orjson.loads, research_path.read_bytes().split())}
    produce(bootstrap, topics.input, stream.lines, stream.keys)
    ends = input_ends(bootstrap, topics.input)
    registry = ("--schema-registry-url", registry_url)
    worker = WorkerProcess(bootstrap, topics, tmp_path, "avro-out", "--output-format", "avro",
                           *registry)  # fmt: skip
    try:
        GroupWatch(bootstrap, topics.group, topics.input, 2).wait_caught_up(ends, 180)
        assert worker.stop()[0] == 0
    finally:
        worker.kill()

    schema_id = latest_id(registry_url, f"{topics.output}-value")
    assert worker.events("registered")[0]["subjects"] == {f"{topics.output}-value": schema_id}
    schema = _registry_schema(registry_url, schema_id)
    records = read_predictions(bootstrap, topics.output, stream.valid)
    assert len(records) == stream.valid == len(research)
    for record in records:
        value = record.value or b""
        assert schema_id_of(value) == schema_id
        decoded = _decode(schema, value)
        expected = research[decoded["event_id"]]
        assert decoded["decision"] is None and "decision" not in expected
        assert decoded["source"]["topic"] == topics.input
        for key in ("event_id", "prediction", "scores", "model"):
            assert _bits(decoded[key]) == _bits(expected[key]), key
        assert type(decoded["prediction"]) is type(expected["prediction"])

    # dead letters stay the raw input bytes
    rejected = len(stream.lines) - stream.valid
    letters = read_with_headers(bootstrap, topics.dlq, rejected)
    assert Counter(x.headers["scoring.reason"].decode() for x in letters) == Counter(
        r for r in stream.reasons if r is not None
    )
    assert {x.value for x in letters} <= set(stream.lines)

    # research/live parity through a recording of the Avro topic (its writer schema kept)
    recording = tmp_path / "avro-out.jsonl"
    out = ("--bootstrap-servers", bootstrap, "--topic", topics.output)
    cli("record", *out, "--output", str(recording), "--value-format", "avro", *registry)
    done = cli("parity", "--expected", str(research_path), "--actual", str(recording))
    assert f"identical {stream.valid}, mismatched 0" in done.stdout

    # replay to a topic in Avro: the same records, under that topic's subject
    replayed = topic_factory(1)
    cli("replay", *bundle, "--bootstrap-servers", bootstrap, "--topic", topics.input,
        "--output-topic", replayed, "--output-format", "avro", *registry)  # fmt: skip
    assert latest_id(registry_url, f"{replayed}-value") > 0
    again = tmp_path / "replayed.jsonl"
    cli("record", "--bootstrap-servers", bootstrap, "--topic", replayed, "--output", str(again),
        "--value-format", "avro", *registry)  # fmt: skip
    cli("parity", "--expected", str(recording), "--actual", str(again))


def test_a_registry_down_at_start_is_exit_3_with_one_line(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    topics = Topics(input=topic_factory(1), output=topic_factory(1), dlq=topic_factory(1))
    down = f"http://127.0.0.1:{free_port()}"
    worker = WorkerProcess(bootstrap, topics, tmp_path, "no-registry", "--output-format", "avro",
                           "--schema-registry-url", down, "--broker-timeout", "3")  # fmt: skip
    try:
        code = worker.wait(60)
    finally:
        worker.kill()
    assert code == 3
    errors = [line for line in worker.log_path.read_text().splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("scoring-worker: error: schema registry")
    assert "registering the prediction record schema" in errors[0]
