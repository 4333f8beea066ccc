"""A fatal error librdkafka reports dozens of times is one line, its count kept (issue 28)."""

from __future__ import annotations

import io

import orjson
import pytest

from schemas.errors import RuntimeFailure
from worker.kafka.types import FailureKind, KafkaFailure
from worker.live.health import Health
from worker.live.settings import WorkerSettings
from worker.logs import EventLog


class _Ready:
    def set_ready(self, ready: bool) -> None:
        pass


def test_repeated_identical_fatal_errors_are_folded_with_their_count() -> None:
    settings = WorkerSettings(
        bundle="b", bootstrap_servers="k:1", input_topic="in", output_topic="out"
    )
    buffer = io.StringIO()
    health = Health(settings, EventLog(buffer), _Ready())
    for attempt in range(95):  # as librdkafka reports one per attempt, timings differing
        text = f"SSL handshake failed: certificate verify failed (after {attempt % 7}ms)"
        health.on_kafka_error(KafkaFailure(FailureKind.AUTH, "_SSL", text))
    health.on_kafka_error(KafkaFailure(FailureKind.AUTH, "_SSL", "another failure"))
    lines = [orjson.loads(line) for line in buffer.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["error", "error"]
    assert "another failure" in lines[1]["error"]
    with pytest.raises(RuntimeFailure, match=r"certificate verify failed.*\(reported 95 times\)"):
        health.check()
