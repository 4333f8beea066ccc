"""Avro and JSON Schema events through a real Schema Registry (rivven-schema,
`scripts/schema-registry`) and the real broker.

Event counts are kept modest for ``make test`` (4,000 Avro events with a kill -9, 600 JSON
Schema events); the 20,000 Avro events issue 30 asks for run in ``make soak``.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka_broker import TopicFactory, committed_offsets, consume_all, poll_until, produce
from schema_registry import PrivateRegistry, latest_id, register, session_registry_url
from worker_harness import (
    SCORING_WORKER,
    Stream,
    Topics,
    WorkerProcess,
    demo_bundle,
    research_records,
    stop_all,
)
from worker_verify import (
    GroupWatch,
    assert_exactly_once,
    input_ends,
    output_progress,
    read_predictions,
    read_with_headers,
    verify_predictions,
)

from examples.stream import generate_labelled_events
from examples.wire import (
    BAD_KINDS,
    JSON_SCHEMA,
    SCHEMA_V1,
    SCHEMA_V2,
    SCHEMA_V3,
    avro_value,
    bad_value,
    header,
    json_schema_value,
)
from worker.core.formats import WriterSchema, schema_id_of
from worker.core.recording import RecordedMessage, encode_message, encode_schema

AVRO_EVENTS = 4_000
AVRO_SOAK_EVENTS = 20_000
JSON_SCHEMA_EVENTS = 600


@pytest.fixture(scope="module")
def registry_url() -> str:
    return session_registry_url()


@dataclass
class WireStream:
    values: list[bytes]
    keys: list[bytes]
    reasons: list[str | None]
    research: dict[str, dict[str, Any]]
    """event_id -> the research record of the same event written as JSON."""

    @property
    def valid(self) -> int:
        return sum(r is None for r in self.reasons)


def wire_stream(
    n: int, seed: int, encode: Any, directory: Path, bad_rate: float = 0.01
) -> WireStream:
    """``encode(i, event) -> (bytes, reason)``; ``bad_rate`` of the events become bytes that
    are not what they claim, the three reasons in turn."""
    rng = random.Random(seed)
    values, reasons, json_lines = [], [], []
    bad = 0
    for i, (line, _) in enumerate(generate_labelled_events(n, seed)):
        event = orjson.loads(line)
        value, reason = encode(i, event)
        if rng.random() < bad_rate:
            reason = BAD_KINDS[bad % len(BAD_KINDS)]
            value = bad_value(reason, value, rng)
            bad += 1
        values.append(value)
        reasons.append(reason)
        if reason is None:
            json_lines.append(line)
    path = directory / f"json-{seed}.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in json_lines))
    valid = Stream(json_lines, [None] * len(json_lines), path)
    research = research_records(demo_bundle(), valid, directory)
    keys = [f"k{i}".encode() for i in range(n)]
    return WireStream(values, keys, reasons, research)


def reasons_in(bootstrap: str, dlq: str, expected: int) -> Counter[str]:
    letters = read_with_headers(bootstrap, dlq, expected)
    return Counter(letter.headers["scoring.reason"].decode() for letter in letters)


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [SCORING_WORKER, *args], capture_output=True, text=True, timeout=600, check=False
    )
    if ok:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_avro_exactly_once_across_kill9_and_score_of_the_recording_without_registry(
    bootstrap: str, registry_url: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    avro_exactly_once(AVRO_EVENTS, bootstrap, registry_url, topic_factory, tmp_path)


@pytest.mark.soak
def test_20000_avro_events_exactly_once_across_kill9_and_score_without_registry(
    bootstrap: str, registry_url: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """Issue 30's count: two schema versions, 1 % bad bytes, a kill -9 at 40 %."""
    avro_exactly_once(AVRO_SOAK_EVENTS, bootstrap, registry_url, topic_factory, tmp_path)


def avro_exactly_once(
    count: int, bootstrap: str, registry_url: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """``count`` Avro events (v1 and v2 in turn, every 250th a v3 without a feature, 1 % bad
    bytes) through ``run`` exactly once across a kill -9; the records equal ``score`` of
    the recording with no registry given."""
    topics = Topics(input=topic_factory(2), output=topic_factory(2), dlq=topic_factory(1))
    subject = f"{topics.input}-value"
    v1, v2, v3 = (register(registry_url, subject, s) for s in (SCHEMA_V1, SCHEMA_V2, SCHEMA_V3))

    def encode(i: int, event: dict[str, Any]) -> tuple[bytes, str | None]:
        if i % 250 == 249:  # a version without the feature `sex`
            return avro_value(v3, SCHEMA_V3, event), "missing_feature"
        schema_id, schema = (v1, SCHEMA_V1) if i % 2 else (v2, SCHEMA_V2)
        return avro_value(schema_id, schema, event), None

    stream = wire_stream(count, 41, encode, tmp_path)
    produce(bootstrap, topics.input, stream.values, stream.keys)
    ends = input_ends(bootstrap, topics.input)
    args = ("--value-format", "avro", "--schema-registry-url", registry_url)
    workers: list[WorkerProcess] = []
    try:
        first = WorkerProcess(
            bootstrap, topics, tmp_path, "avro", *args, "--max-batch-events", "100"
        )
        workers.append(first)
        first.wait_event("assigned", 120)
        target = int(0.4 * stream.valid)
        poll_until(
            f"output to pass {target}",
            180,
            lambda: True if output_progress(bootstrap, topics.output) >= target else _alive(first),
        )
        first.kill()
        final = WorkerProcess(bootstrap, topics, tmp_path, "avro", *args)
        workers.append(final)
        GroupWatch(bootstrap, topics.group, topics.input, 2).wait_caught_up(ends, 240)
        code, _ = final.stop()
        assert code == 0
        assert final.events("stop")[0]["consumed"] > 0  # the kill left it work to do
    finally:
        stop_all(workers)

    records = read_predictions(bootstrap, topics.output, stream.valid)
    assert_exactly_once(verify_predictions(records, stream.research), stream.valid)
    rejected = len(stream.values) - stream.valid
    assert reasons_in(bootstrap, topics.dlq, rejected) == Counter(
        r for r in stream.reasons if r is not None
    )
    assert {"wrong_format", "unknown_schema", "invalid_payload", "missing_feature"} <= set(
        stream.reasons
    )

    # research without the registry: the recording keeps the bytes and the writer schemas
    recording = tmp_path / "avro.jsonl"
    cli(
        "record",
        "--bootstrap-servers",
        bootstrap,
        "--topic",
        topics.input,
        "--output",
        str(recording),
        *args,
    )
    scored = tmp_path / "scored.jsonl"
    done = cli(
        "score",
        "--bundle",
        str(demo_bundle()),
        "--input",
        str(recording),
        "--output",
        str(scored),
        "--value-format",
        "avro",
    )  # no --schema-registry-url: nothing but the recording
    assert sorted(scored.read_bytes().splitlines()) == sorted(r.value or b"" for r in records)
    assert f"scored {stream.valid} events" in done.stderr


def test_json_schema_events_and_replay_with_the_recorded_schemas(
    bootstrap: str, registry_url: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    topics = Topics(input=topic_factory(2), output=topic_factory(2), dlq=topic_factory(1))
    schema_id = register(registry_url, f"{topics.input}-value", JSON_SCHEMA, "JSON")

    def encode(i: int, event: dict[str, Any]) -> tuple[bytes, str | None]:
        if i == 7:  # JSON cut short
            return header(schema_id) + b'{"island": ', "invalid_payload"
        return json_schema_value(schema_id, event), None

    stream = wire_stream(JSON_SCHEMA_EVENTS, 43, encode, tmp_path, bad_rate=0.03)
    produce(bootstrap, topics.input, stream.values, stream.keys)
    ends = input_ends(bootstrap, topics.input)
    args = ("--value-format", "json-schema", "--schema-registry-url", registry_url)
    worker = WorkerProcess(bootstrap, topics, tmp_path, "jsonschema", *args)
    try:
        GroupWatch(bootstrap, topics.group, topics.input, 2).wait_caught_up(ends, 180)
        assert worker.stop()[0] == 0
    finally:
        stop_all([worker])
    records = read_predictions(bootstrap, topics.output, stream.valid)
    assert_exactly_once(verify_predictions(records, stream.research), stream.valid)
    rejected = len(stream.values) - stream.valid
    assert reasons_in(bootstrap, topics.dlq, rejected) == Counter(
        r for r in stream.reasons if r is not None
    )
    assert set(stream.reasons) == {None, "wrong_format", "unknown_schema", "invalid_payload"}

    recording = tmp_path / "json-schema.jsonl"
    base = ("--bootstrap-servers", bootstrap, "--topic", topics.input)
    cli("record", *base, "--output", str(recording), *args)
    replayed = tmp_path / "replayed.jsonl"
    bundle = ("--bundle", str(demo_bundle()))
    cli("replay", *bundle, *base, "--output", str(replayed), "--value-format", "json-schema",
        "--schemas", str(recording))  # fmt: skip
    assert sorted(replayed.read_bytes().splitlines()) == sorted(r.value or b"" for r in records)


def test_a_registry_away_is_waited_for_and_then_exit_3_with_nothing_lost(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """A private registry paused under the worker: no dead letter, no commit past the events
    it cannot decode; back in time, every event once; away past --broker-timeout, exit 3."""
    registry = PrivateRegistry(tmp_path)
    registry.start()
    topics = Topics(input=topic_factory(1), output=topic_factory(1), dlq=topic_factory(1))
    subject = f"{topics.input}-value"
    ids = [register(registry.url, subject, s) for s in (SCHEMA_V1, SCHEMA_V2)]
    events = [orjson.loads(line) for line, _ in generate_labelled_events(700, 47)]
    v1 = [avro_value(ids[0], SCHEMA_V1, e) for e in events[:300]]
    v2 = [avro_value(ids[1], SCHEMA_V2, e) for e in events[300:600]]
    keys = [f"k{i}".encode() for i in range(700)]
    args = ("--value-format", "avro", "--schema-registry-url", registry.url)
    workers: list[WorkerProcess] = []
    try:
        produce(bootstrap, topics.input, v1, keys[:300])
        worker = WorkerProcess(bootstrap, topics, tmp_path, "away", *args)
        workers.append(worker)
        watch = GroupWatch(bootstrap, topics.group, topics.input, 1)
        watch.wait_caught_up({0: 300}, 120)
        written = output_progress(bootstrap, topics.output)  # records and commit markers
        # Paused, not restarted: a restarted in-memory registry is empty until the schemas
        # are registered again, and a worker asking in that window is told (rightly) that
        # the id is unknown: 300 dead letters, a race of the test's making (seen once).
        registry.pause()
        produce(bootstrap, topics.input, v2, keys[300:600])
        worker.wait_event("registry_unavailable", 60)
        assert watch.committed() == {0: 300}
        assert output_progress(bootstrap, topics.output) == written
        registry.resume()
        watch.wait_caught_up({0: 600}, 120)
        worker.wait_event("registry_available", 30)
        assert worker.stop()[0] == 0

        v3_id = register(registry.url, subject, SCHEMA_V3)
        registry.stop()
        v3 = [avro_value(v3_id, SCHEMA_V3, e) for e in events[600:]]
        produce(bootstrap, topics.input, v3, keys[600:])
        late = WorkerProcess(bootstrap, topics, tmp_path, "late", *args, "--broker-timeout", "5")
        workers.append(late)
        assert late.wait(120) == 3
        assert "schema registry unreachable for 5s" in late.log_path.read_text()
    finally:
        stop_all(workers)
        registry.stop()
    assert committed_offsets(bootstrap, topics.group, topics.input) == {0: 600}
    assert len(read_predictions(bootstrap, topics.output, 600)) == 600
    assert reasons_in(bootstrap, topics.dlq, 0) == Counter()


def test_publish_registers_a_recordings_schemas_on_another_registry(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """A recording made against one registry, published where the same schema has another
    id: the payloads are unchanged, the header names the id the schema got there."""
    registry = PrivateRegistry(tmp_path)
    registry.start()
    try:
        topic = topic_factory(1)
        register(registry.url, "other-value", JSON_SCHEMA, "JSON")  # takes the first id
        events = [orjson.loads(line) for line, _ in generate_labelled_events(50, 53)]
        values = [avro_value(1, SCHEMA_V1, e) for e in events]
        schema = WriterSchema(1, "AVRO", json.dumps(SCHEMA_V1))
        lines = [encode_schema(schema)] + [
            encode_message(RecordedMessage("old", 0, i, None, None, None, v))
            for i, v in enumerate(values)
        ]
        recording = tmp_path / "old.jsonl"
        recording.write_bytes(b"".join(line + b"\n" for line in lines))
        base = ("--bootstrap-servers", bootstrap, "--topic", topic, "--input", str(recording))
        refused = cli("publish", *base, "--value-format", "avro", ok=False)
        assert refused.returncode == 2 and "needs --schema-registry-url" in refused.stderr
        done = cli("publish", *base, "--value-format", "avro", "--schema-registry-url",
                   registry.url)  # fmt: skip
        new_id = latest_id(registry.url, f"{topic}-value")
        assert new_id != 1 and f"id 1 -> {new_id}" in done.stderr
        got = [r.value or b"" for r in consume_all(bootstrap, topic, len(values))]
        assert [schema_id_of(v) for v in got] == [new_id] * len(values)
        assert [v[5:] for v in got] == [v[5:] for v in values]
    finally:
        registry.stop()


def _alive(worker: WorkerProcess) -> None:
    code = worker.proc.poll()
    assert code is None, f"worker exited {code}: {worker.log_path.read_text()[-2000:]}"
