"""Replay's pure parts: range options, the time window, and the order records are written."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model_bundles.bundle import Bundle
from schemas.errors import BadInputError
from worker.core.ranges import Bounds, bounds, in_window, parse_time
from worker.core.recording import RecordedMessage
from worker.core.scoring import BatchScorer
from worker.replay.replay import FileSink, replay

EVENT = {
    "event_id": "e",
    "island": "Dream",
    "bill_length_mm": 45.0,
    "bill_depth_mm": 17.0,
    "flipper_length_mm": 190.0,
    "body_mass_g": 3700,
    "sex": "female",
}


def test_times_are_iso_8601_and_utc_unless_they_say_otherwise() -> None:
    assert parse_time("2025-01-01T00:00:01Z", "--from-time") == 1_735_689_601_000
    assert parse_time("2025-01-01T00:00:01", "--from-time") == 1_735_689_601_000
    assert parse_time("2025-01-01T01:00:01+01:00", "--from-time") == 1_735_689_601_000
    assert parse_time("2025-01-01T00:00:00.123Z", "--to-time") == 1_735_689_600_123
    with pytest.raises(BadInputError, match="--to-time: not an ISO 8601 time"):
        parse_time("tomorrow", "--to-time")


def test_range_options_are_checked() -> None:
    assert bounds(5, None, None) == Bounds(from_offset=5)
    with pytest.raises(BadInputError, match="not both"):
        bounds(5, "2025-01-01", None)
    with pytest.raises(BadInputError, match="later than"):
        bounds(None, "2025-01-02", "2025-01-01")


def message(offset: int, stamp: int | None) -> RecordedMessage:
    kind = None if stamp is None else "create_time"
    return RecordedMessage("t", 0, offset, stamp, kind, None, b"{}")


@given(
    st.lists(st.none() | st.integers(0, 100), max_size=30),
    st.none() | st.integers(0, 100),
    st.none() | st.integers(0, 100),
)
def test_the_time_window_keeps_exactly_the_messages_in_it(
    stamps: list[int | None], low: int | None, high: int | None
) -> None:
    messages = [message(i, s) for i, s in enumerate(stamps)]
    batches = [messages[i : i + 4] for i in range(0, len(messages), 4)]
    kept = [m for batch in in_window(batches, Bounds(None, low, high)) for m in batch]
    if low is None and high is None:
        assert kept == messages  # no window: everything, timestamp or not
        return
    assert kept == [
        m
        for m in messages
        if m.timestamp_ms is not None
        and (low is None or m.timestamp_ms >= low)
        and (high is None or m.timestamp_ms < high)
    ]


def test_replay_writes_in_read_order_and_leaves_no_partial_file(
    penguins_bundle: Bundle, tmp_path: Path
) -> None:
    values = [orjson.dumps({**EVENT, "event_id": f"e{i}"}) for i in range(5)]
    batches = [
        [RecordedMessage("t", p, o, 1000 + o, "create_time", None, values[2 * p + o])]
        for p in range(2)
        for o in range(2)
    ] + [[RecordedMessage("t", 2, 0, None, None, b"k", b"not json")]]
    out = tmp_path / "out.jsonl"
    sink = FileSink(out)
    summary = replay(batches, BatchScorer(penguins_bundle), sink)
    assert not out.exists()  # complete only on commit
    sink.commit()
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["event_id"] for r in records] == ["e0", "e1", "e2", "e3"]
    assert [r["source"]["timestamp"] for r in records] == [1000, 1001, 1000, 1001]
    assert (summary.read, summary.scored, dict(summary.rejected)) == (5, 4, {"invalid_json": 1})
    assert list(tmp_path.iterdir()) == [out]
