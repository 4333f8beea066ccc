"""Metrics of the faults that stop partitions or readers without stopping the worker:
a partition whose start offset cannot be had, a transaction left hanging open, and a
model call that has not returned (``worker.live.watchdog``).

Labels come from the assignment and the topics the worker writes (topic, partition) and
from closed sets of reasons, never from events.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

FAULT_METRIC_NAMES = frozenset(
    {
        "scoring_partition_blocked",
        "scoring_hanging_transaction",
        "scoring_batch_in_progress_seconds",
    }
)


class FaultMetrics:
    """``scoring_partition_blocked{topic,partition,reason}`` and
    ``scoring_hanging_transaction{topic,partition}``: 1 while the condition holds, the
    series removed once it is over."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._blocked = Gauge(
            "scoring_partition_blocked",
            "1 while an assigned partition is not consumed because its committed offset "
            "cannot be had (reason: unstable_offsets, offset_fetch_failed, "
            "offset_out_of_range, waiting)",
            ["topic", "partition", "reason"],
            registry=registry,
        )
        self._hanging = Gauge(
            "scoring_hanging_transaction",
            "1 while a partition's last stable offset has been held by an open transaction "
            "for longer than the transaction timeout",
            ["topic", "partition"],
            registry=registry,
        )
        self._in_progress = Gauge(
            "scoring_batch_in_progress_seconds",
            "Seconds the model has been scoring the batch in hand (0 between batches); set "
            "by a watchdog thread, so it grows while the loop is stuck in the model",
            registry=registry,
        )
        self._blocked_reasons: dict[tuple[str, int], str] = {}
        self._hanging_now: set[tuple[str, int]] = set()

    def set_partition_blocked(self, topic: str, partition: int, reason: str | None) -> None:
        """Blocked for ``reason``, or no longer blocked (None)."""
        old = self._blocked_reasons.pop((topic, partition), None)
        if old is not None:
            self._blocked.remove(topic, str(partition), old)
        if reason is not None:
            self._blocked_reasons[(topic, partition)] = reason
            self._blocked.labels(topic, str(partition), reason).set(1)

    def set_hanging(self, partitions: set[tuple[str, int]]) -> None:
        """The partitions with a hanging transaction now (the others are cleared)."""
        for topic, partition in self._hanging_now - partitions:
            self._hanging.remove(topic, str(partition))
        for topic, partition in partitions - self._hanging_now:
            self._hanging.labels(topic, str(partition)).set(1)
        self._hanging_now = set(partitions)

    def set_batch_in_progress(self, seconds: float) -> None:
        self._in_progress.set(seconds)
