"""Counts the commands print read as English: ``recorded 1 message``, not ``1 messages``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from worker.core.counts import counted
from worker.replay.replay import ReplaySummary
from worker.research.score import ScoreSummary


def test_one_is_singular_and_every_other_count_plural() -> None:
    assert counted(1, "message") == "1 message"
    assert [counted(n, "event id") for n in (0, 2)] == ["0 event ids", "2 event ids"]
    assert counted(3, "index", "indexes") == "3 indexes"


def test_summaries_of_one_event_are_singular() -> None:
    replayed = ReplaySummary(read=1, scored=1).line("in", "out")
    assert replayed.startswith("replayed 1 event of in: scored 1, rejected 0")
    scored = ScoreSummary(scored=1, rejected=Counter()).line(Path("out.jsonl"))
    assert scored.startswith("scored 1 event, rejected 0")
