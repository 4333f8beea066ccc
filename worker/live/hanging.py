"""No stall behind a hanging transaction: detect it, report it, recover or stop with the
command that clears it (docs/delivery.md, "Hanging transactions").

A transaction is *hanging* when a partition still holds it open although no producer
will ever finish it. Kafka 4 brokers with transaction protocol v2 (KIP-890) prevent
most such cases, but the client half of KIP-890 part 2 is not in librdkafka 2.16, and
a broker restart at the wrong moment can still leave one (issue 20). Readers with
``read_committed`` then stop at it (the partition's last stable offset, LSO, stays put)
and, when it holds the group's offsets, the group's committed offsets stay *unstable*:
the member that owns those input partitions cannot start them.

``HangingWatch.check`` (every ``CHECK_EVERY_S`` from the loop) asks for the offsets in a
helper thread (``worker.kafka.types.Call``: two ListOffsets requests take up to seconds
while the broker is away, and the loop goes on meanwhile) and, once answered, looks for
either:

- an output or DLQ partition whose LSO is behind its high watermark and has not moved
  for longer than the transaction timeout plus ``CLEANUP_MARGIN_S`` (the broker aborts
  an expired transaction within its cleanup interval, 10 s by default);
- the ``__consumer_offsets`` partition holding the group's offsets, in the same state,
  while input partitions of this worker have waited that long for their committed
  offsets (unstable, or the broker not answering the stable-offset fetch at all, as seen
  in issue 20's run C). Both conditions: other groups' transactions share that
  partition, and may legitimately last longer.

It reports them (``scoring_hanging_transaction{topic,partition}``, one
``hanging_transaction`` line), then recovers what the client can: the transactional
producer is replaced at once (``init_transactions`` with the same transactional id
aborts whatever an earlier instance of this replica left open, and returns once that
is done). If the partitions' LSOs have not moved when asked right after, and still
not at the next check (so the metric is up for a scrape or two), the worker stops
(exit 3) with one line naming them and the ``kafka-transactions.sh`` commands that
abort the transactions (the admin API that would let the worker do it, KIP-664
AbortTransaction, is not in librdkafka).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from schemas.errors import RuntimeFailure
from worker.kafka.offsets_admin import consumer_offsets_partition
from worker.kafka.types import Call, KafkaFailure, Partition
from worker.live.settings import WorkerSettings
from worker.logs import EventLog

CHECK_EVERY_S = 1.0
"""How often the watch asks for the partitions' offsets (two ListOffsets requests). With a
transaction timeout T it stops the worker at most T + ``CLEANUP_MARGIN_S`` + 3 checks
after a partition's LSO stops moving: within 2 T for T >= 13 s (issue 20)."""
CLEANUP_MARGIN_S = 10.0
"""Added to the transaction timeout: how late the broker may abort an expired transaction
(``transaction.abort.timed.out.transaction.cleanup.interval.ms``, 10 s by default)."""
ASK_TIMEOUT_S = 2.0
GROUP_OFFSETS_TOPIC = "__consumer_offsets"


Offsets = dict[Partition, tuple[int, int]]
"""(last stable offset, high watermark) per partition."""


class StableOffsets(Protocol):
    """``worker.kafka.offsets_admin.OffsetsAdmin``."""

    def stable_and_end(self, partitions: Sequence[Partition], timeout_s: float) -> Offsets: ...
    def partition_count(self, topic: str, timeout_s: float) -> int | None: ...


class Pending(Protocol):
    """A call under way (``worker.kafka.types.Call``)."""

    def wait(self, timeout_s: float) -> bool: ...
    def result(self) -> Any: ...


class HangingObserver(Protocol):
    def set_hanging(self, partitions: set[Partition]) -> None: ...


@dataclass
class _Held:
    lso: int
    hw: int
    since: float


@dataclass(frozen=True)
class WatchSettings:
    topics: tuple[str, ...]
    """Topics the worker writes (output, DLQ)."""
    group: str
    transaction_timeout_s: float
    bootstrap_servers: str

    @classmethod
    def of(cls, s: WorkerSettings) -> WatchSettings:
        """From the worker's settings (librdkafka's default transaction timeout: 60 s)."""
        timeout_ms = float(s.producer_config().get("transaction.timeout.ms", 60_000))
        topics = tuple(filter(None, (s.output_topic, s.dlq_topic)))
        return cls(topics, s.group_id, timeout_ms / 1000, s.bootstrap_servers)


class HangingWatch:
    """Watches LSOs and unstable group offsets; see the module docstring."""

    def __init__(
        self,
        admin: StableOffsets,
        settings: WatchSettings,
        log: EventLog,
        observer: HangingObserver,
        recover: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        start: Callable[[str, Callable[[], Any]], Pending] = Call,
    ) -> None:
        self.admin = admin
        self.settings = settings
        self.log = log
        self.observer = observer
        self.recover = recover
        self.clock = clock
        self.start = start
        self._asked: tuple[float, Pending] | None = None
        """When the offsets were asked for, and the call that asks."""
        self.limit_s = settings.transaction_timeout_s + CLEANUP_MARGIN_S
        self._partitions: list[Partition] = []
        self._held: dict[Partition, _Held] = {}
        self._next = clock() + CHECK_EVERY_S
        self._group: Partition | None = None
        self._reported: list[str] = []
        """The partitions reported hanging at the last check (and still so after recovery)."""

    def check(self, waiting_for: dict[Partition, float]) -> None:
        """One look, when due and answered (``waiting_for``: seconds each input partition
        has waited for its committed offset); RuntimeFailure when a hanging transaction
        outlived recovery."""
        now = self.clock()
        if self._asked is None and now >= self._next:
            self._next = now + CHECK_EVERY_S
            self._asked = (now, self.start("list_offsets", self._ask))
        if self._asked is None or not self._asked[1].wait(0):
            return
        asked_at, call = self._asked
        self._asked = None
        try:
            outputs, group = call.result()
        except KafkaFailure:
            return  # the broker does not answer: health deals with that
        stuck = self._stuck(outputs, asked_at)
        waited = sorted(f"{t}:{p}" for (t, p), s in waiting_for.items() if s > self.limit_s)
        held_group = self._stuck(group, asked_at)
        if waited:  # only then: other groups' transactions share that partition
            stuck.update(held_group)
        if stuck and self._reported:  # reported and recovered once, still there: stop
            raise RuntimeFailure(self._give_up_line(stuck))
        if stuck:
            self.observer.set_hanging(set(stuck))
            self.log.error(
                "hanging_transaction",
                partitions=_describe(stuck),
                waiting_inputs=waited,
                action="replacing the transactional producer",
            )
            self.recover("hanging transaction")
            still = self._still_held(stuck)
            if not still:
                self.log.emit("hanging_transaction_cleared", partitions=_names(stuck))
            stuck = still  # still there: the next check stops the worker
        elif self._reported:
            self.log.emit("hanging_transaction_cleared", partitions=self._reported)
        self._reported = _names(stuck)
        self.observer.set_hanging(set(stuck))

    def _still_held(self, stuck: dict[Partition, _Held]) -> dict[Partition, _Held]:
        """The partitions whose LSO has not moved since (asked again after recovery)."""
        try:
            now = self.admin.stable_and_end(sorted(stuck), ASK_TIMEOUT_S)
        except KafkaFailure:
            return stuck
        return {p: h for p, h in stuck.items() if p not in now or now[p][0] == h.lso < now[p][1]}

    def _ask(self) -> tuple[Offsets, Offsets]:
        """In the helper thread: the offsets of the partitions written to, and of the
        group's ``__consumer_offsets`` partition (empty when that cannot be listed, e.g.
        no right to). KafkaFailure when the broker does not answer."""
        if not self._partitions:
            self._partitions = self._find_partitions()
        outputs = self.admin.stable_and_end(self._partitions, ASK_TIMEOUT_S)
        group: Offsets = {}
        with contextlib.suppress(KafkaFailure):
            group = self.admin.stable_and_end([self._group_partition()], ASK_TIMEOUT_S)
        return outputs, group

    def _stuck(self, offsets: Offsets, now: float) -> dict[Partition, _Held]:
        """Partitions whose LSO has stayed behind their high watermark, unmoved, too long."""
        stuck: dict[Partition, _Held] = {}
        for p, (lso, hw) in offsets.items():
            held = self._held.get(p)
            if lso >= hw:
                self._held.pop(p, None)
                continue
            if held is None or held.lso != lso:
                held = self._held[p] = _Held(lso, hw, now)
            if now - held.since > self.limit_s:
                stuck[p] = held
        return stuck

    def _find_partitions(self) -> list[Partition]:
        out: list[Partition] = []
        for topic in self.settings.topics:
            count = self.admin.partition_count(topic, ASK_TIMEOUT_S) or 0
            out += [(topic, p) for p in range(count)]
        return out

    def _group_partition(self) -> Partition:
        """The ``__consumer_offsets`` partition that holds the group's offsets."""
        if self._group is None:
            count = self.admin.partition_count(GROUP_OFFSETS_TOPIC, ASK_TIMEOUT_S) or 50
            self._group = (
                GROUP_OFFSETS_TOPIC,
                consumer_offsets_partition(self.settings.group, count),
            )
        return self._group

    def _give_up_line(self, stuck: dict[Partition, _Held]) -> str:
        b = self.settings.bootstrap_servers
        tool = f"kafka-transactions.sh --bootstrap-server {b}"
        aborts = [
            f"{tool} abort --topic {t} --partition {p} --start-offset {h.lso}"
            if h.lso >= 0
            else f"{tool} find-hanging --topic {t} --partition {p}"
            for (t, p), h in sorted(stuck.items())
        ]
        return (
            f"hanging transaction on {', '.join(_describe(stuck))} for more than "
            f"{self.limit_s:g}s (transaction timeout + {CLEANUP_MARGIN_S:g}s), still there "
            f"after the producer was replaced; abort it with: {' ; '.join(aborts)}"
        )


def _names(partitions: Iterable[Partition]) -> list[str]:
    return [f"{t}:{p}" for t, p in sorted(partitions)]


def _describe(stuck: dict[Partition, _Held]) -> list[str]:
    return [
        f"{t}:{p} (last stable offset {h.lso}, high watermark {h.hw})"
        for (t, p), h in sorted(stuck.items())
    ]
