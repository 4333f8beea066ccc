"""Bounded ranges of a topic: the options that name one, and the filter that keeps it exact.

Pure values and functions shared by the Kafka edge (which resolves a range against
the broker) and replay (which scores it); no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.errors import BadInputError
from worker.core.recording import RecordedMessage

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Bounds:
    """A range of a topic: start by offset or time, end by time or the end offsets at start."""

    from_offset: int | None = None
    from_time_ms: int | None = None
    to_time_ms: int | None = None


@dataclass(frozen=True)
class PartitionRange:
    partition: int
    start: int
    end: int
    """Exclusive: the first offset not read."""

    @property
    def size(self) -> int:
        return max(self.end - self.start, 0)


def parse_time(text: str, option: str) -> int:
    """An ISO 8601 time (UTC when it names no offset) as epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInputError(f"{option}: not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def bounds(from_offset: int | None, from_time: str | None, to_time: str | None) -> Bounds:
    """The range options, checked: one start at most, and a time range that is not empty."""
    if from_offset is not None and from_time is not None:
        raise BadInputError("give --from-offset or --from-time, not both")
    start = parse_time(from_time, "--from-time") if from_time else None
    stop = parse_time(to_time, "--to-time") if to_time else None
    if start is not None and stop is not None and stop <= start:
        raise BadInputError("--to-time must be later than --from-time")
    return Bounds(from_offset=from_offset, from_time_ms=start, to_time_ms=stop)


def in_window(
    batches: Iterable[list[RecordedMessage]], span: Bounds
) -> Iterator[list[RecordedMessage]]:
    """Keep the messages whose timestamp is in ``[from_time, to_time)``, when times are given.

    Filtering (rather than cutting the range at an offset) makes a time range exact even
    when timestamps are out of order within a partition; messages without one are left out.
    """
    low, high = span.from_time_ms, span.to_time_ms
    if low is None and high is None:
        yield from batches
        return
    for batch in batches:
        kept = [m for m in batch if _within(m.timestamp_ms, low, high)]
        if kept:
            yield kept


def _within(stamp: int | None, low: int | None, high: int | None) -> bool:
    return stamp is not None and (low is None or stamp >= low) and (high is None or stamp < high)


def describe(ranges: Iterable[PartitionRange]) -> str:
    """``0:[0,512) 1:[0,498)`` (the half-open offset range of each partition)."""
    return " ".join(f"{r.partition}:[{r.start},{max(r.end, r.start)})" for r in ranges)
