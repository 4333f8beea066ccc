"""The group's committed offsets, read with stable-offset semantics by consumers of
their own, so that a request never holds up the group member's fetch loop.

Why not the member itself: since confluent-kafka 2.16 a ``Consumer`` serialises calls
made from different threads (a gate that waits for the current call to finish,
confluent-kafka-python#2317). A ``committed()`` asked from a helper thread then waits for
the loop's ``consume()`` to return, and an idle loop that calls ``consume()`` again at
once can keep it waiting for good: a fresh group's worker waited 0.2 to 22 s for its
start offsets, and in a bare reproduction a request asked while the loop polled had not
returned after 40 s. The other way round, the loop's ``consume()`` would wait for a
request held by an open transaction (up to the request's timeout).

So the requests go to *readers*: plain consumers with the group's id that never join the
group. An OffsetFetch needs no membership, so their answers are the member's. One
request per partition (a partition whose offsets a transaction holds keeps only its own
request waiting, see ``ExplicitStartConsumer.ask_committed``), at most ``READERS`` at a
time, each on a reader of its own (a reader's calls are serialised too).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from worker.kafka.errors import from_exception
from worker.kafka.types import CommittedOffsets, Partition

READERS = 4
"""Committed-offset requests in flight at once, each on its own reader consumer
(about 1 MiB and 4 librdkafka threads each, measured)."""

_MEMBERSHIP = ("group.instance.id", "partition.assignment.strategy", "group.protocol")
"""Properties about joining the group: a reader never joins."""


class CommittedReader:
    """Committed-offset requests on reader consumers, answered in helper threads."""

    def __init__(
        self,
        config: Mapping[str, Any],
        logger: logging.Logger | None = None,
        readers: int = READERS,
    ) -> None:
        """``config``: the group member's librdkafka properties (its ``group.id`` and
        ``isolation.level``: read_committed asks with ``require_stable``)."""
        self._config = {k: v for k, v in config.items() if k not in _MEMBERSHIP}
        if logger is not None:
            self._config["logger"] = logger
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._made: list[Any] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="committed")
        # one reader at once: it finds the group's coordinator before the first request
        self._idle.put(self._reader())

    def ask(self, partitions: Sequence[Partition], timeout_s: float) -> Future[Any]:
        """The committed offsets of ``partitions``, one request each (``timeout_s`` each);
        the future's result is a ``CommittedOffsets``. A request that times out is
        reported ``unstable``: a read_committed request is retried by librdkafka while
        the broker answers UNSTABLE_OFFSET_COMMIT."""
        out: Future[Any] = Future()
        asked = list(partitions)
        futures = [self._pool.submit(self._one, p, timeout_s) for p in asked]

        def combine(_done: Future[Any]) -> None:
            if all(f.done() for f in futures):
                settle(out, combine_outcomes(asked, [f.result() for f in futures]))

        for future in futures:
            future.add_done_callback(combine)
        if not futures:
            settle(out, CommittedOffsets())
        return out

    def _one(self, p: Partition, timeout_s: float) -> tuple[str, Any]:
        try:
            reader = self._take()
        except Exception as exc:  # a client that cannot be made (as the member's would not)
            return ("failed", f"{type(exc).__name__}: {exc}")
        try:
            (tp,) = reader.committed([TopicPartition(*p)], timeout_s)
        except KafkaException as exc:
            problem = from_exception(exc)
            return ("unstable" if "TIMED_OUT" in problem.code else "failed", str(problem))
        except Exception as exc:  # e.g. closed meanwhile
            return ("failed", f"{type(exc).__name__}: {exc}")
        finally:
            reader.poll(0)  # serve its error and log events: nobody else polls a reader
            self._idle.put(reader)
        return outcome(tp)

    def _take(self) -> Any:
        """An idle reader; a new one when all are busy (never more than the pool's
        threads, since each request holds one reader)."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._reader()

    def _reader(self) -> Any:
        reader = Consumer(self._config)
        with self._lock:
            self._made.append(reader)
        return reader

    def close(self) -> None:
        """Wait for the requests in flight, then release the readers."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            made, self._made = self._made, []
        for reader in made:
            reader.close()


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
