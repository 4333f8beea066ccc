"""No stall behind a hanging transaction: detect it, report it, recover or stop with the
command that clears it (docs/delivery.md, "Hanging transactions").

A transaction is *hanging* when a partition still holds it open although no producer
will ever finish it. Kafka 4 brokers with transaction protocol v2 (KIP-890) prevent
most such cases, but the client half of KIP-890 part 2 is not in librdkafka 2.16, and
a broker restart at the wrong moment can still leave one (issue 20). Readers with
``read_committed`` then stop at it (the partition's last stable offset, LSO, stays put)
and, when it holds the group's offsets, the group's committed offsets stay *unstable*:
the member that owns those input partitions cannot start them.

``HangingWatch.check`` (every ``CHECK_EVERY_S`` from the loop) looks for either:

- an output or DLQ partition whose LSO is behind its high watermark and has not moved
  for longer than the transaction timeout plus ``CLEANUP_MARGIN_S`` (the broker aborts
  an expired transaction within its cleanup interval, 10 s by default);
- input partitions of this worker whose committed offsets have been unstable that long.

It reports them (``scoring_hanging_transaction{topic,partition}``, one
``hanging_transaction`` line), then recovers what the client can: the transactional
producer is replaced at once (``init_transactions`` with the same transactional id
aborts whatever an earlier instance of this replica left open, and returns once that
is done). If the partitions' LSOs still have not moved when asked again right after,
the worker stops (exit 3) with one line naming them and the ``kafka-transactions.sh``
commands that abort the transactions (the admin API that would let the worker do it,
KIP-664 AbortTransaction, is not in librdkafka).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from worker.errors import RuntimeFailure
from worker.kafka.offsets import consumer_offsets_partition
from worker.kafka.types import KafkaFailure, Partition
from worker.logs import EventLog

CHECK_EVERY_S = 5.0
"""How often the watch asks for the partitions' offsets."""
CLEANUP_MARGIN_S = 10.0
"""Added to the transaction timeout: how late the broker may abort an expired transaction
(``transaction.abort.timed.out.transaction.cleanup.interval.ms``, 10 s by default)."""
ASK_TIMEOUT_S = 2.0
GROUP_OFFSETS_TOPIC = "__consumer_offsets"


class StableOffsets(Protocol):
    """``worker.kafka.offsets.OffsetsAdmin``."""

    def stable_and_end(
        self, partitions: Sequence[Partition], timeout_s: float
    ) -> dict[Partition, tuple[int, int]]: ...
    def partition_count(self, topic: str, timeout_s: float) -> int | None: ...


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
    ) -> None:
        self.admin = admin
        self.settings = settings
        self.log = log
        self.observer = observer
        self.recover = recover
        self.clock = clock
        self.limit_s = settings.transaction_timeout_s + CLEANUP_MARGIN_S
        self._partitions: list[Partition] = []
        self._held: dict[Partition, _Held] = {}
        self._next = clock() + CHECK_EVERY_S

    def check(self, unstable_for: dict[Partition, float]) -> None:
        """One look, when due; RuntimeFailure when a hanging transaction outlived recovery."""
        now = self.clock()
        if now < self._next:
            return
        self._next = now + CHECK_EVERY_S
        try:
            stuck = self._stuck_outputs(now)
        except KafkaFailure:
            return  # the broker does not answer: health deals with that
        waited = {p: s for p, s in unstable_for.items() if s > self.limit_s}
        if waited:
            stuck.update(self._group_offsets_held(max(waited.values())))
        self.observer.set_hanging(set(stuck))
        if not stuck:
            return
        self.log.error(
            "hanging_transaction",
            partitions=_describe(stuck),
            unstable_inputs=sorted(f"{t}:{p}" for t, p in waited),
            action="replacing the transactional producer",
        )
        self.recover("hanging transaction")
        still = self._still_held(stuck)
        if still:
            raise RuntimeFailure(self._give_up_line(still))
        self.observer.set_hanging(set())
        self.log.emit(
            "hanging_transaction_cleared", partitions=sorted(f"{t}:{p}" for t, p in stuck)
        )

    def _still_held(self, stuck: dict[Partition, _Held]) -> dict[Partition, _Held]:
        """The partitions whose LSO has not moved since (asked again after recovery)."""
        try:
            now = self.admin.stable_and_end(sorted(stuck), ASK_TIMEOUT_S)
        except KafkaFailure:
            return stuck
        return {p: h for p, h in stuck.items() if p not in now or now[p][0] == h.lso < now[p][1]}

    def _stuck_outputs(self, now: float) -> dict[Partition, _Held]:
        if not self._partitions:
            self._partitions = self._find_partitions()
        offsets = self.admin.stable_and_end(self._partitions, ASK_TIMEOUT_S)
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

    def _group_offsets_held(self, waited_s: float) -> dict[Partition, _Held]:
        """The ``__consumer_offsets`` partition holding the group's offsets, with its LSO
        (-1 when the broker does not tell)."""
        count = self.admin.partition_count(GROUP_OFFSETS_TOPIC, ASK_TIMEOUT_S) or 50
        p = (GROUP_OFFSETS_TOPIC, consumer_offsets_partition(self.settings.group, count))
        try:
            lso, hw = self.admin.stable_and_end([p], ASK_TIMEOUT_S)[p]
        except (KafkaFailure, KeyError):
            lso = hw = -1
        return {p: _Held(lso, hw, self.clock() - waited_s)}

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


def _describe(stuck: dict[Partition, _Held]) -> list[str]:
    return [
        f"{t}:{p} (last stable offset {h.lso}, high watermark {h.hw})"
        for (t, p), h in sorted(stuck.items())
    ]
