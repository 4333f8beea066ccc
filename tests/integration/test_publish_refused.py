"""`publish` is all or nothing, and names the line and the setting a refused message needs
(issue 28, item 7): one 1.5 MB event among 4,048 used to leave 4,042 messages written,
exit 3 with a bare MSG_SIZE_TOO_LARGE, and a rerun after the fix duplicated them all."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka_broker import TopicFactory, consume_all

from worker.cli.main import run_cli

EVENTS = 4_048
LARGE_LINE = 4_042


def _events(path: Path) -> Path:
    lines = [orjson.dumps({"event_id": f"e{i}", "bill_length_mm": 40.0}) for i in range(EVENTS)]
    lines[LARGE_LINE - 1] = orjson.dumps({"event_id": "large", "pad": "x" * 1_500_000})
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _publish(bootstrap: str, topic: str, events: Path, *extra: str) -> int:
    kafka = ["--bootstrap-servers", bootstrap, "--topic", topic, "--input", str(events)]
    return run_cli(["publish", *kafka, *extra])


def test_a_refused_event_publishes_nothing_and_a_rerun_after_the_fix_publishes_once(
    bootstrap: str,
    topic_factory: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = topic_factory(2)
    events = _events(tmp_path / "events.jsonl")
    producer_limit = ("--kafka-property", "producer.message.max.bytes=2000000")

    # refused by the producer's own message.max.bytes
    assert _publish(bootstrap, topic, events) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{events}:{LARGE_LINE}:" in err[0], err
    assert "message.max.bytes" in err[0] and "nothing was published" in err[0]
    assert consume_all(bootstrap, topic) == []  # read_committed: the transaction aborted

    # refused by the broker (the topic's max.message.bytes)
    assert _publish(bootstrap, topic, events, *producer_limit) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{events}:{LARGE_LINE}:" in err[0], err
    assert f"--topic {topic} --config max.message.bytes=N --alter" in err[0]
    assert consume_all(bootstrap, topic) == []

    alter = ["--topic", topic, "--partitions", "2", "--config", "max.message.bytes=2097152"]
    assert run_cli(["topics", "create", "--bootstrap-servers", bootstrap, *alter, "--alter"]) == 0
    assert _publish(bootstrap, topic, events, *producer_limit) == 0
    records = consume_all(bootstrap, topic, EVENTS)
    ids = [orjson.loads(r.value or b"")["event_id"] for r in records]
    assert len(ids) == EVENTS == len(set(ids)), "every event once, none twice"
