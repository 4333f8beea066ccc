"""Where each assigned partition starts: the group's committed offset, as the worker fetched
it with stable-offset semantics, and never a silent reset.

A partition assigned to the worker is claimed but not consumed until its committed offset
is known (``worker.kafka.offsets`` says why librdkafka is not left to do it). ``serve``,
called once per loop step, asks for the committed offsets of every waiting partition
(one admin request at a time, answered asynchronously, so the loop goes on with the
other partitions) and starts each partition there:

- a committed offset: start there;
- no committed offset at all: start at the log's beginning (one ``start_offsets`` line
  says so, with ``from_beginning``);
- offsets held by an open transaction (UNSTABLE_OFFSET_COMMIT) or a failed request: ask
  again, backing off from 0.2 s to 5 s. While a partition waits longer than
  ``grace_s`` it is *blocked*: readiness is false, ``scoring_partition_blocked{reason}``
  is 1 and one ``partition_blocked`` line says why. ``worker.live.hanging`` decides when
  an unstable wait has lasted too long.

A batch that was rolled back rewinds its partitions the same way (``rewind``: paused,
then resumed at the committed offset). A committed offset outside the log (deleted by
retention) comes back from librdkafka as ``_AUTO_OFFSET_RESET`` for that partition: the
partition stays paused and blocked (``offset_out_of_range``) for an operator to decide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from worker.kafka.types import CommittedOffsets, KafkaFailure, Partition
from worker.live.delivery import Backoff
from worker.logs import EventLog

GRACE_S = 5.0
"""How long a partition may wait for its committed offset before it counts as blocked."""
ASK_TIMEOUT_S = 5.0
"""Timeout of one committed-offsets request."""
OUT_OF_RANGE = "_AUTO_OFFSET_RESET"


class PositionSource(Protocol):
    """The consumer side (``worker.kafka.offsets.ExplicitStartConsumer``)."""

    def start_at(self, offsets: Mapping[Partition, int | None]) -> None: ...
    def pause(self, partitions: Sequence[Partition]) -> None: ...
    def resume_at(self, offsets: Mapping[Partition, int | None]) -> None: ...


class CommittedAsker(Protocol):
    """``worker.kafka.offsets_admin.OffsetsAsker``: the future's result is ``CommittedOffsets``."""

    def ask_committed(self, partitions: Sequence[Partition], timeout_s: float) -> Future[Any]: ...


class PositionObserver(Protocol):
    def set_partition_blocked(self, topic: str, partition: int, reason: str | None) -> None: ...


@dataclass(eq=False)
class _Waiting:
    since: float
    resume: bool
    """A started partition paused after a rollback (seek and resume), else a claimed one."""
    reason: str = "waiting"
    unstable_since: float | None = None
    blocked: bool = False
    final: bool = False
    """Not asked again (offset out of range): an operator decides."""


class Positions:
    """The partitions waiting for their start offset, and the requests that find it."""

    def __init__(
        self,
        source: PositionSource,
        asker: CommittedAsker,
        log: EventLog,
        observer: PositionObserver,
        on_blocked: Callable[[bool], None],
        clock: Callable[[], float] = time.monotonic,
        grace_s: float = GRACE_S,
    ) -> None:
        self.source = source
        self.asker = asker
        self.log = log
        self.observer = observer
        self.on_blocked = on_blocked
        self.clock = clock
        self.grace_s = grace_s
        self.waiting: dict[Partition, _Waiting] = {}
        self.backoff = Backoff(0.2, 5.0, sleep=lambda _s: None)
        self._next_ask = 0.0
        self._asked: tuple[Future[Any], dict[Partition, _Waiting]] | None = None

    # --- what the loop tells ------------------------------------------------------------

    def assigned(self, partitions: Iterable[Partition]) -> None:
        now = self.clock()
        for p in partitions:
            self._drop(p)
            self.waiting[p] = _Waiting(now, resume=False)
        self._next_ask = now

    def rewind(self, partitions: Sequence[Partition]) -> None:
        """Stop reading ``partitions`` and start them again at the committed offsets."""
        self.source.pause(partitions)
        now = self.clock()
        for p in partitions:
            self._drop(p)
            self.waiting[p] = _Waiting(now, resume=True)
        self._next_ask = now

    def forget(self, partitions: Iterable[Partition]) -> None:
        for p in partitions:
            self._drop(p)
        self.on_blocked(self.blocked)

    def on_failure(self, problem: KafkaFailure) -> bool:
        """Take a consumer error that is about a partition's position; True if taken."""
        if problem.code != OUT_OF_RANGE or problem.partition is None:
            return False
        p = problem.partition
        self.source.pause([p])
        self._drop(p)
        entry = self.waiting[p] = _Waiting(self.clock(), True, "offset_out_of_range", final=True)
        self._block(p, entry, str(problem))
        self.on_blocked(True)
        return True

    # --- the work -----------------------------------------------------------------------

    def serve(self) -> None:
        """Apply an answer that came, ask again when due, report partitions blocked."""
        if self._asked is not None and self._asked[0].done():
            future, asked = self._asked
            self._asked = None
            self._apply(future, asked)
        now = self.clock()
        due = {p: w for p, w in self.waiting.items() if not w.final}
        if due and self._asked is None and now >= self._next_ask:
            future = self.asker.ask_committed(sorted(due), ASK_TIMEOUT_S)
            self._asked = (future, due)
            if future.done():  # answered at once
                self._asked = None
                self._apply(future, due)
        for p, w in self.waiting.items():
            if not w.blocked and now - w.since > self.grace_s:
                self._block(p, w, w.reason)
        self.on_blocked(self.blocked)

    @property
    def blocked(self) -> bool:
        return any(w.blocked for w in self.waiting.values())

    def waiting_for(self) -> dict[Partition, float]:
        """Seconds each partition has waited for its committed offset (not the ones an
        operator must decide about)."""
        now = self.clock()
        return {p: now - w.since for p, w in self.waiting.items() if not w.final}

    def unstable_for(self) -> dict[Partition, float]:
        """Seconds each waiting partition's offsets have been unstable without a break."""
        now = self.clock()
        return {
            p: now - w.unstable_since
            for p, w in self.waiting.items()
            if w.unstable_since is not None
        }

    def _apply(self, future: Future[Any], asked: dict[Partition, _Waiting]) -> None:
        current = {p: w for p, w in asked.items() if self.waiting.get(p) is w}
        try:
            answer: CommittedOffsets = future.result()
        except Exception as exc:  # the request failed as a whole: ask again later
            self._again(current, f"offset_fetch_failed: {exc}")
            self._schedule(True)
            return
        found: dict[Partition, int | None] = {p: o for p, o in answer.offsets.items()}
        found.update({p: None for p in answer.missing})
        ready = {p: o for p, o in found.items() if p in current}
        self._start(ready, {p: current[p] for p in ready})
        now = self.clock()
        for p in answer.unstable:
            if p in current and current[p].unstable_since is None:
                current[p].unstable_since = now
        self._again({p: current[p] for p in answer.unstable if p in current}, "unstable_offsets")
        for p, why in answer.failed.items():
            if p in current:
                self._again({p: current[p]}, f"offset_fetch_failed: {why}")
        self._schedule(bool(set(current) - set(ready)))

    def _schedule(self, waiting: bool) -> None:
        """The next request: at once when nothing is left waiting, else after a backoff."""
        if not waiting:
            self.backoff.reset()
            return
        self._next_ask = self.clock() + self.backoff.next_s
        self.backoff.wait()

    def _start(
        self, offsets: dict[Partition, int | None], entries: dict[Partition, _Waiting]
    ) -> None:
        if not offsets:
            return
        starts = {p: o for p, o in offsets.items() if not entries[p].resume}
        resumes = {p: o for p, o in offsets.items() if entries[p].resume}
        if starts:
            self.source.start_at(starts)
        if resumes:
            self.source.resume_at(resumes)
        for p in offsets:
            self._drop(p)
        now = self.clock()
        self.log.emit(
            "start_offsets",
            offsets={_name(p): o for p, o in sorted(offsets.items()) if o is not None},
            from_beginning=[_name(p) for p, o in sorted(offsets.items()) if o is None],
            rewound=[_name(p) for p in sorted(resumes)],
            waited_s=round(max(now - e.since for e in entries.values()), 3),
        )

    def _again(self, entries: dict[Partition, _Waiting], reason: str) -> None:
        if not entries:
            return
        for p, w in entries.items():
            if not reason.startswith("unstable"):
                w.unstable_since = None
            if w.blocked and _label(reason) != _label(w.reason):
                self.observer.set_partition_blocked(p[0], p[1], None)
                self.observer.set_partition_blocked(p[0], p[1], _label(reason))
            w.reason = reason

    def _block(self, p: Partition, w: _Waiting, detail: str) -> None:
        w.blocked = True
        self.observer.set_partition_blocked(p[0], p[1], _label(w.reason))
        self.log.error(
            "partition_blocked",
            partition=_name(p),
            reason=_label(w.reason),
            detail=detail,
            waited_s=round(self.clock() - w.since, 3),
        )

    def _drop(self, p: Partition) -> None:
        old = self.waiting.pop(p, None)
        if old is not None and old.blocked:
            self.observer.set_partition_blocked(p[0], p[1], None)
            self.log.emit("partition_unblocked", partition=_name(p), reason=_label(old.reason))


def _label(reason: str) -> str:
    """The metric label of a reason: ``unstable_offsets``, ``offset_fetch_failed``,
    ``offset_out_of_range`` or ``waiting`` (no answer yet)."""
    return reason.split(":", 1)[0]


def _name(p: Partition) -> str:
    return f"{p[0]}:{p[1]}"
