"""The group's committed offsets, read with stable-offset semantics by consumers of
their own, so that a request never holds up the group member's fetch loop.

Why not the member itself: since confluent-kafka 2.16 a ``Consumer`` serialises calls
made from different threads (a gate that waits for the current call to finish,
confluent-kafka-python#2317, #2346). A ``committed()`` asked from a helper thread then waits for
the loop's ``consume()`` to return, and an idle loop that calls ``consume()`` again at
once can keep it waiting for good: a fresh group's worker waited 0.2 to 22 s for its
start offsets, and in a bare reproduction a request asked while the loop polled had not
returned after 40 s. The other way round, the loop's ``consume()`` would wait for a
request held by an open transaction (up to the request's timeout).

So the requests go to *readers*: plain consumers with the group's id that never join the
group. An OffsetFetch needs no membership, so their answers are the member's. One
request per partition, so that a partition whose offsets a transaction holds keeps only
its own request waiting (``ExplicitStartConsumer.ask_committed``); at most ``READERS``
at a time, each on a reader of its own (a reader's calls are serialised too): beyond
that many held partitions, the others' requests queue behind them for up to a timeout.
A reader whose requests keep timing out is replaced.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from worker.kafka.errors import from_exception
from worker.kafka.types import CommittedOffsets, Partition

READERS = 8
"""Committed-offset requests in flight at once, each on its own reader consumer, made
when first needed (about 1 MiB and a few librdkafka threads each, measured)."""
REPLACE_AFTER_TIMEOUTS = 3
"""Requests of one reader timing out in a row before it is replaced: a client can keep a
dead connection's state after a broker restart (librdkafka#5511, as ``OffsetsAdmin``)."""

_LEFT_OUT = ("group.instance.id", "partition.assignment.strategy", "group.protocol", "debug")
"""Properties a reader does not take: joining the group (a reader never joins), and
librdkafka's debug logging (a reader logs nothing, see ``_reader_config``)."""


class CommittedReader:
    """Committed-offset requests on reader consumers, answered in helper threads."""

    def __init__(
        self,
        config: Mapping[str, Any],
        readers: int = READERS,
        make: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        """``config``: the group member's librdkafka properties (its ``group.id`` and
        ``isolation.level``: read_committed asks with ``require_stable``); ``make``
        makes a reader from its properties (a ``Consumer``)."""
        self._config = _reader_config(config)
        self._make = make
        self._idle: queue.SimpleQueue[tuple[Any, int]] = queue.SimpleQueue()
        self._made: list[Any] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="committed")
        # one reader at once: it finds the group's coordinator before the first request
        self._idle.put((self._reader(), 0))

    def ask(self, partitions: Sequence[Partition], timeout_s: float) -> Future[Any]:
        """The committed offsets of ``partitions``, one request each (``timeout_s`` each);
        the future's result is a ``CommittedOffsets``. A request that times out is
        reported ``unstable``: a read_committed request is retried by librdkafka while
        the broker answers UNSTABLE_OFFSET_COMMIT. Up to ``READERS`` requests run at once;
        more wait for a reader."""
        out: Future[Any] = Future()
        asked = list(partitions)
        futures = [self._pool.submit(self._one, p, timeout_s) for p in asked]

        def combine(_done: Future[Any]) -> None:
            if all(f.done() for f in futures):
                settle(out, combine_outcomes(asked, [_outcome_of(f) for f in futures]))

        for future in futures:
            future.add_done_callback(combine)
        if not futures:
            settle(out, CommittedOffsets())
        return out

    def _one(self, p: Partition, timeout_s: float) -> tuple[str, Any]:
        try:
            reader, timeouts = self._take()
        except Exception as exc:  # a client that cannot be made (as the member's would not)
            return ("failed", f"{type(exc).__name__}: {exc}")
        answer: tuple[str, Any]
        timed_out = False
        try:
            (tp,) = reader.committed([TopicPartition(*p)], timeout_s)
            answer = outcome(tp)
        except KafkaException as exc:
            problem = from_exception(exc)
            timed_out = "TIMED_OUT" in problem.code
            answer = ("unstable" if timed_out else "failed", str(problem))
        except Exception as exc:  # e.g. closed meanwhile
            answer = ("failed", f"{type(exc).__name__}: {exc}")
        self._give_back(reader, timeouts + 1 if timed_out else 0)
        return answer

    def _take(self) -> tuple[Any, int]:
        """An idle reader and its timeouts in a row; a new one when all are busy (never
        more than the pool's threads, since each request holds one reader)."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._reader(), 0

    def _give_back(self, reader: Any, timeouts: int) -> None:
        """Serve the reader's events (nobody else polls it), then make it idle again, or
        replace it after ``REPLACE_AFTER_TIMEOUTS`` timeouts in a row."""
        try:
            reader.poll(0)
            if timeouts < REPLACE_AFTER_TIMEOUTS:
                self._idle.put((reader, timeouts))
                return
        except Exception:
            pass
        with self._lock:
            if reader in self._made:
                self._made.remove(reader)
        with contextlib.suppress(Exception):
            reader.close()

    def _reader(self) -> Any:
        reader = self._make(self._config)
        with self._lock:
            self._made.append(reader)
        return reader

    def close(self) -> None:
        """Wait for the requests in flight (each within its timeout), then release the
        readers."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            made, self._made = self._made, []
        for reader in made:
            with contextlib.suppress(Exception):
                reader.close()


def _reader_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A reader's properties: the member's (its group, isolation, security), without the
    ``_LEFT_OUT`` ones, and silent: a request's failure comes back in its answer
    (``offset_fetch_failed`` with librdkafka's reason), while log lines would pile up in
    an idle reader that nobody polls, and the member already reports the broker's state."""
    out = {k: v for k, v in config.items() if k not in _LEFT_OUT}
    out["log_level"] = 0
    return out


def _outcome_of(future: Future[Any]) -> tuple[str, Any]:
    """A request's outcome; a request cancelled by ``close`` or that raised is ``failed``."""
    if future.cancelled():
        return ("failed", "cancelled: the reader is closing")
    error = future.exception()
    if error is not None:
        return ("failed", f"{type(error).__name__}: {error}")
    result: tuple[str, Any] = future.result()
    return result


def settle(out: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Complete ``out`` unless it already is (an answer after giving up is dropped)."""
    try:
        if error is not None:
            out.set_exception(error)
        else:
            out.set_result(result)
    except InvalidStateError:
        pass


def outcome(tp: TopicPartition) -> tuple[str, Any]:
    """One partition of an OffsetFetch answer: (offset|missing|unstable|failed, value)."""
    error = tp.error
    if error is not None and error.code() == KafkaError.UNSTABLE_OFFSET_COMMIT:
        return ("unstable", None)
    if error is not None:
        return ("failed", f"{error.name()}: {error.str()}")
    if tp.offset == OFFSET_INVALID or tp.offset < 0:
        return ("missing", None)
    return ("offset", tp.offset)


def combine_outcomes(
    asked: Sequence[Partition], outcomes: Sequence[tuple[str, Any]]
) -> CommittedOffsets:
    answer = CommittedOffsets()
    for p, (kind, value) in zip(asked, outcomes, strict=True):
        if kind == "offset":
            answer.offsets[p] = value
        elif kind == "missing":
            answer.missing.append(p)
        elif kind == "unstable":
            answer.unstable.append(p)
        else:
            answer.failed[p] = value
    return answer
