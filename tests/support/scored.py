"""Real scored micro-batches for the metrics and drift tests: demo lines through the scorer."""

from __future__ import annotations

from collections.abc import Sequence

from examples.stream import generate_events, parse_drift
from model_bundles.bundle import Bundle
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer, ScoredBatch


def score_lines(bundle: Bundle, lines: Sequence[bytes], topic: str = "events") -> ScoredBatch:
    """Score lines as one micro-batch, keyed and placed like Kafka messages."""
    events = [
        InputEvent(value=line, key=f"k-{i}".encode(), topic=topic, offset=i)
        for i, line in enumerate(lines)
    ]
    return BatchScorer(bundle).score(events)


def stream_lines(
    events: int, seed: int = 0, drift: Sequence[str] = (), *, with_species: bool = False
) -> list[bytes]:
    """A demo stream (``examples.stream``), ``drift`` as in its ``--drift`` option."""
    knobs = [parse_drift(d) for d in drift]
    return list(generate_events(events, seed, knobs, with_species=with_species))


def stream_batches(
    bundle: Bundle,
    events: int,
    batch: int,
    seed: int = 0,
    drift: Sequence[str] = (),
    *,
    with_species: bool = False,
) -> list[ScoredBatch]:
    """A demo stream scored in micro-batches of ``batch`` events."""
    lines = stream_lines(events, seed, drift, with_species=with_species)
    return [score_lines(bundle, lines[i : i + batch]) for i in range(0, len(lines), batch)]
