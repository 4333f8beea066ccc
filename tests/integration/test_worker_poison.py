"""A stream with poison in it: every valid event scored once, every bad one dead-lettered.

``make test`` runs it exactly once; at-least-once (the same checks of the event, the same
dead letters, written outside a transaction) in ``make soak``: ``make test`` covers its
dead letters in test_worker_dlq_limit and its redelivery in test_worker_crash.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka_broker import TopicFactory
from worker_harness import (
    Stream,
    Topics,
    WorkerProcess,
    cached_stream,
    demo_bundle,
    produce_stream,
    research_records_async,
)
from worker_verify import (
    assert_exactly_once,
    read_predictions,
    read_with_headers,
    verify_predictions,
)

from model_bundles.store import read_manifest

EVENTS = 20_000
LARGE_AT = (1_234, 9_876, 15_000)
DLQ_LIMIT = 900_000


@pytest.fixture(scope="module")
def poison_stream() -> Stream:
    return cached_stream(EVENTS, seed=11, poison_rate=0.05, large_at=LARGE_AT)


def _topics(topic_factory: TopicFactory) -> Topics:
    big = {"max.message.bytes": str(8 * 1024 * 1024)}
    return Topics(input=topic_factory(4, big), output=topic_factory(4), dlq=topic_factory(2))


@pytest.mark.parametrize(
    "delivery", ["exactly-once", pytest.param("at-least-once", marks=pytest.mark.soak)]
)
def test_poison_stream_valid_events_once_rejects_in_dlq(
    bootstrap: str,
    topic_factory: TopicFactory,
    poison_stream: Stream,
    tmp_path: Path,
    delivery: str,
) -> None:
    stream = poison_stream
    topics = _topics(topic_factory)
    produce_stream(bootstrap, topics.input, stream)
    research = research_records_async(stream)
    rejected = len(stream.lines) - stream.valid
    assert {r for r in stream.reasons if r} >= {
        "invalid_json",
        "not_an_object",
        "missing_feature",
        "wrong_type",
        "non_finite",
        "too_large",
    }

    worker = WorkerProcess(
        bootstrap, topics, tmp_path, "poison", "--idle-timeout", "5", delivery=delivery
    )
    assert worker.wait(240) == 0, worker.log_path.read_text()[-3000:]
    expected = research.result()
    assert len(expected) == stream.valid

    records = read_predictions(bootstrap, topics.output, stream.valid)
    verdict = verify_predictions(records, expected)
    assert_exactly_once(verdict, stream.valid)  # a clean run has no duplicates in either mode
    inputs = {
        (m.partition, m.offset): m for m in read_with_headers(bootstrap, topics.input, EVENTS)
    }
    _check_sources(records, inputs)
    _check_dead_letters(
        read_with_headers(bootstrap, topics.dlq, rejected), stream, inputs, topics.input
    )
    _check_logs(worker, stream)


def _check_sources(records, inputs) -> None:  # type: ignore[no-untyped-def]
    """``source`` names the input message the record was computed from."""
    for record in records:
        body = orjson.loads(record.value)
        source = body["source"]
        message = inputs[(source["partition"], source["offset"])]
        assert message.key == record.key
        assert source["timestamp"] == message.timestamp_ms


def _check_dead_letters(letters, stream: Stream, inputs, input_topic: str) -> None:  # type: ignore[no-untyped-def]
    digest = read_manifest(demo_bundle()).digest
    assert len(letters) == len(stream.lines) - stream.valid
    seen = set()
    for letter in letters:
        index = int(letter.key.decode()[1:])
        seen.add(index)
        line = stream.lines[index]
        h = letter.headers
        assert h["scoring.reason"].decode() == stream.reasons[index]
        assert h["scoring.detail"]
        assert h["scoring.bundle.digest"].decode() == digest
        assert h["scoring.source.topic"].decode() == input_topic
        position = (int(h["scoring.source.partition"]), int(h["scoring.source.offset"]))
        assert inputs[position].key == letter.key
        if len(line) > DLQ_LIMIT:
            assert letter.value == line[:DLQ_LIMIT]
            assert int(h["scoring.value.truncated"]) == len(line)
        else:
            assert letter.value == line and "scoring.value.truncated" not in h
    assert seen == {i for i, r in enumerate(stream.reasons) if r is not None}


def _check_logs(worker: WorkerProcess, stream: Stream) -> None:
    lines = worker.lines()
    events = [line["event"] for line in lines]
    assert events[0] == "start" and events[-1] == "stop"
    assert "assigned" in events
    assert len(lines) < 30, "logging is per event of note, never per message"
    stop = lines[-1]
    assert stop["reason"] == "idle"
    assert stop["consumed"] == len(stream.lines)
    assert stop["produced"] == stream.valid
    assert sum(stop["rejected"].values()) == len(stream.lines) - stream.valid
    assert all("ts" in line and "level" in line for line in lines)
