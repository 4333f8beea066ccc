"""bench.flame's reading of py-spy's collapsed stacks: the main thread's shares."""

from __future__ import annotations

import pytest

from bench.flame import main_thread_shares

RAW = "\n".join(
    [
        "thread (1): MainThread;<module> (x:1);Worker._step (loop.py:1);"
        "Worker._process (loop.py:2);BatchScorer.score (s.py:3);predict (p.py:4) 6",
        "thread (1): MainThread;<module> (x:1);Worker._step (loop.py:1);"
        "Worker._poll (loop.py:5);GroupConsumer.poll_batch (c.py:6) 3",
        "thread (1): MainThread;<module> (x:1);load (b.py:7);import_module (i.py:8) 1",
        "thread (2): delivery;Pipeline._serve (p.py:9) 50",
    ]
)


def test_main_thread_samples_are_shared_by_the_step_they_fall_in() -> None:
    shares = dict((where, share) for share, where in main_thread_shares(RAW))
    assert shares == {
        "Worker._process > BatchScorer.score": pytest.approx(0.6),
        "Worker._poll > GroupConsumer.poll_batch": pytest.approx(0.3),
        "(outside the loop) load > import_module": pytest.approx(0.1),
    }


def test_no_main_thread_samples_gives_nothing() -> None:
    assert main_thread_shares("thread (2): other;f (a.py:1) 4") == []
