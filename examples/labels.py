"""Late labels for a demo stream: the species of the penguin each event was drawn from.

The demo stream (``examples.stream``) draws every event from a row of the penguins data;
generating the same stream again with ``with_species=True`` (the same seed, drift, poison
and start time: the draws do not depend on it) gives each event's true species. Labels
are written for every ``every``-th event that still parses with its id, as labels that
arrive later for a sample of the traffic would be::

    {"event_id": "ev-0-12", "label": "Gentoo"}

``python -m examples.labels --events N [--seed S] [--drift F=+X ...] [--poison-rate R]
[--start-time ISO] [--every K] --output labels.jsonl``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from examples.stream import (
    DEFAULT_START_TIME,
    SPECIES,
    generate_tagged_events,
    parse_drift,
    parse_start_time,
)


def write_species_labels(
    out: Path,
    n: int,
    *,
    seed: int = 0,
    drift: Sequence[str] = (),
    poison_rate: float = 0.0,
    start_time: str | None = None,
    every: int = 1,
) -> int:
    """Write the labels file; returns the number of labels written."""
    start = parse_start_time(start_time) if start_time else DEFAULT_START_TIME
    tagged = generate_tagged_events(
        n, seed, [parse_drift(d) for d in drift], poison_rate, start_time=start,
        with_species=True,
    )  # fmt: skip
    written = 0
    with out.open("wb") as f:
        for index, item in enumerate(tagged):
            if index % every or item.kind is not None:  # poisoned lines: no clean id
                continue
            event = orjson.loads(item.line)
            f.write(orjson.dumps({"event_id": event["event_id"], "label": event[SPECIES]}) + b"\n")
            written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.labels")
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", action="append", default=[])
    parser.add_argument("--poison-rate", type=float, default=0.0)
    parser.add_argument("--start-time", default=None)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    count = write_species_labels(
        args.output, args.events, seed=args.seed, drift=args.drift,
        poison_rate=args.poison_rate, start_time=args.start_time, every=args.every,
    )  # fmt: skip
    print(f"{count} labels -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
