"""A dead-letter topic that takes less than the input topic never wedges the worker.

Issue 15: one 50 KB invalid event between two valid ones, and a DLQ whose
``max.message.bytes`` is 20,000: before, every transaction was refused with
MSG_SIZE_TOO_LARGE and rolled back for good (nothing consumed, ``--idle-timeout``
never fired). Now the dead letter is cut to fit the DLQ's own limit.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka_broker import TopicFactory, produce
from worker_harness import Topics, WorkerProcess
from worker_verify import read_predictions, read_with_headers

from examples.stream import generate_labelled_events

DLQ_LIMIT = 20_000
POISON = b"not json: " + b"x" * 50_000


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_oversized_dead_letter_is_cut_to_the_dlq_topic_limit(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, delivery: str
) -> None:
    valid = [line for line, reason in generate_labelled_events(2, seed=5) if reason is None]
    assert len(valid) == 2
    topics = Topics(
        input=topic_factory(1),
        output=topic_factory(1),
        dlq=topic_factory(1, {"max.message.bytes": str(DLQ_LIMIT)}),
    )
    produce(bootstrap, topics.input, [valid[0], POISON, valid[1]], [b"k0", b"k1", b"k2"])

    worker = WorkerProcess(
        bootstrap,
        topics,
        tmp_path,
        "dlq-limit",
        "--max-events",
        "3",
        "--idle-timeout",
        "20",
        delivery=delivery,
    )
    assert worker.wait(90) == 0, worker.log_path.read_text()[-3000:]

    assert len(read_predictions(bootstrap, topics.output, 2)) == 2
    [letter] = read_with_headers(bootstrap, topics.dlq, 1)
    assert letter.key == b"k1"
    assert letter.headers["scoring.reason"] == b"invalid_json"
    assert int(letter.headers["scoring.value.truncated"]) == len(POISON)
    assert letter.value is not None and POISON.startswith(letter.value)
    assert 10_000 < len(letter.value) < DLQ_LIMIT
    stop = worker.events("stop")[-1]
    assert stop["reason"] == "max_events"
    assert (stop["consumed"], stop["produced"], stop["rejected"]) == (3, 2, {"invalid_json": 1})
    assert stop["rolled_back"] == 0


def test_a_record_the_output_topic_refuses_goes_to_the_dlq(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """A prediction record too large for the output topic (its event id is 5,000 bytes):
    ``output_rejected`` in the DLQ, the other events scored."""
    valid = [line for line, reason in generate_labelled_events(3, seed=6) if reason is None]
    event = orjson.loads(valid[1])
    event["event_id"] = "x" * 5_000
    lines = [valid[0], orjson.dumps(event), valid[2]]
    topics = Topics(
        input=topic_factory(1),
        output=topic_factory(1, {"max.message.bytes": "3000"}),
        dlq=topic_factory(1),
    )
    produce(bootstrap, topics.input, lines, [b"k0", b"k1", b"k2"])

    worker = WorkerProcess(
        bootstrap, topics, tmp_path, "out-limit", "--max-events", "3", "--idle-timeout", "20"
    )
    assert worker.wait(90) == 0, worker.log_path.read_text()[-3000:]

    assert len(read_predictions(bootstrap, topics.output, 2)) == 2
    [letter] = read_with_headers(bootstrap, topics.dlq, 1)
    assert (letter.key, letter.value) == (b"k1", lines[1])
    assert letter.headers["scoring.reason"] == b"output_rejected"
    assert b"MSG_SIZE_TOO_LARGE" in letter.headers["scoring.detail"]
    [noted] = worker.events("output_rejected")
    assert noted["source"] == f"topic {topics.input} partition 0 offset 1"
    stop = worker.events("stop")[-1]
    assert (stop["produced"], stop["rejected"]) == (2, {"output_rejected": 1})
    # The refused record rolls its batch back once. Under load librdkafka may roll the retry
    # back once more: the failed message left a gap in the idempotent producer's sequence
    # numbers (OUT_OF_ORDER_SEQUENCE_NUMBER, "requires epoch bump"), which only an abort
    # mends. Either way nothing is lost or duplicated (the reads above are exact).
    assert stop["rolled_back"] in (1, 2), stop


def test_a_dead_letter_the_dlq_refuses_stops_the_worker_with_one_line(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """A DLQ whose limit leaves no room even for a dead letter's headers: exit 3, one
    line naming the event and the broker's error, never a wedge."""
    topics = Topics(
        input=topic_factory(1),
        output=topic_factory(1),
        dlq=topic_factory(1, {"max.message.bytes": "200"}),
    )
    produce(bootstrap, topics.input, [POISON], [b"k0"])

    worker = WorkerProcess(
        bootstrap, topics, tmp_path, "dlq-tiny", "--max-events", "1", "--idle-timeout", "20"
    )
    assert worker.wait(90) == 3, worker.log_path.read_text()[-3000:]
    [error] = [line["text"] for line in worker.lines() if line["event"] == "<not json>"]
    assert error.startswith(f"scoring-worker: error: dead-letter topic {topics.dlq} refused")
    assert f"topic {topics.input} partition 0 offset 0" in error
    assert "MSG_SIZE_TOO_LARGE" in error
