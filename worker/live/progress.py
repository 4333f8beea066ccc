"""What the run loop reports about its progress, so that a stuck worker never looks idle.

A worker that reads events but cannot deliver them (every transaction rolled back and
retried) must show it in its metrics and readiness, whatever the cause:

- events read are counted when first read (``events_read``), delivered or not; an event
  read again after a rollback rewound the consumer is not counted twice;
- the lag of every owned partition is reported after every poll, from the consumer's
  position and the end offsets, whether or not anything was committed (after a rollback
  the position is back at the committed offset, so the lag shows every waiting event);
- every delivery ends in ``committed`` or ``rolled_back(reason)``, and readiness is false
  from a rolled-back batch until a batch is delivered again (``Health.set_delivering``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from worker.core.events import InputEvent
from worker.kafka.types import Partition


class ProgressObserver(Protocol):
    """The monitoring side of progress (``monitoring.metrics.WorkerMetrics`` is one)."""

    def events_read(self, topic: str, count: int) -> None: ...
    def set_lag(self, topic: str, partition: int, lag: int) -> None: ...
    def forget_partition(self, topic: str, partition: int) -> None: ...
    def committed(self) -> None: ...
    def rolled_back(self, reason: str) -> None: ...


class DeliveringStatus(Protocol):
    def set_delivering(self, delivering: bool) -> None: ...


Lags = Callable[[Sequence[Partition]], dict[Partition, int]]


class Progress:
    """Turns the loop's polls, deliveries and rebalances into observer calls."""

    def __init__(self, observer: ProgressObserver, status: DeliveringStatus, lags: Lags) -> None:
        self._observer = observer
        self._status = status
        self._lags = lags
        self._last: Sequence[InputEvent] = ()
        self._read_to: dict[Partition, int] = {}
        """Per partition rewound by a rollback: the offset after the last event read."""
        self._unread: dict[Partition, int] = {}
        """Per partition of the batch just rolled back: its events, which wait again while
        the partition is paused for its committed offset (``worker.live.positions``) and
        the consumer's position still stands past them."""

    def read(self, topic: str, events: Sequence[InputEvent]) -> None:
        """After a poll: count the events not read before (0 still creates the series).
        Only after a rollback does this look at each event, until the rewound
        partitions are read past where they were."""
        self._last = events
        self._unread.clear()  # the position moved since (sought back, or read again)
        read_to = self._read_to
        count = len(events)
        if read_to:
            for e in events:
                key = (e.topic, e.partition)
                mark = read_to.get(key)
                if mark is not None and e.offset < mark:
                    count -= 1  # read before the rollback
                elif mark is not None:
                    del read_to[key]  # caught up: every later event is new
        self._observer.events_read(topic, count)

    def delivered(self, ok: bool, reason: str) -> None:
        """After ``Delivery.deliver`` of the batch last read: ``reason`` is why it rolled
        back (when not ``ok``); its events come again and are not counted twice."""
        if ok:
            self._observer.committed()
        else:
            self._observer.rolled_back(reason)
            read_to = self._read_to
            for e in self._last:
                key = (e.topic, e.partition)
                read_to[key] = max(read_to.get(key, 0), e.offset + 1)
                self._unread[key] = self._unread.get(key, 0) + 1
        self._status.set_delivering(ok)

    def report_lags(self, assigned: Iterable[Partition]) -> bool:
        """End offset minus position of every owned partition (cached watermarks), plus the
        events of a batch just rolled back (read, so behind the position, but waiting).

        Returns True when caught up: partitions are owned and every one of them has a known
        lag of 0. A partition whose position or end offset is not known yet (just assigned,
        waiting for its committed offset, not fetched yet) is not caught up: its events
        may all be waiting (issue 28)."""
        owned = sorted(assigned)
        lags = self._lags(owned)
        caught_up = bool(owned) and len(lags) == len(owned)
        for (topic, partition), lag in lags.items():
            lag += self._unread.get((topic, partition), 0)
            self._observer.set_lag(topic, partition, lag)
            caught_up = caught_up and lag == 0
        return caught_up

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Revoked or lost: another replica reads and reports these now."""
        for topic, partition in partitions:
            self._read_to.pop((topic, partition), None)
            self._observer.forget_partition(topic, partition)
