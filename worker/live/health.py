"""A live worker's health: readiness, broker outages, and when to give up.

Ready means: the consumer has partitions, none of them is blocked (its start offset
cannot be had, ``worker.live.positions``), the broker answers, the last batch was
delivered (a rolled-back batch makes the worker not ready until one is), and no stop
was asked.
An outage (seen by librdkafka's error callback, a failed call, or delivery waiting) makes
the worker not ready and starts the give-up clock (``broker_timeout_s``); a metadata probe
with backoff notices the broker's return. ``check`` is the one place that decides to end
the run: a fatal Kafka error, the broker gone too long, or a stop that cannot finish.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Protocol

from schemas.errors import RuntimeFailure, StartupAborted
from worker.kafka.acl import with_acl
from worker.kafka.types import FailureKind, KafkaFailure
from worker.live.delivery import Backoff
from worker.live.settings import WorkerSettings
from worker.logs import EventLog

FATAL_KINDS = (FailureKind.AUTH, FailureKind.FENCED, FailureKind.FATAL)
_NUMBERS = re.compile(r"\d+")


def _shape(problem: KafkaFailure) -> str:
    """A failure's text without its numbers (timings, attempts): what makes it the same."""
    return _NUMBERS.sub("#", f"{problem.code}: {problem}")


class Stopped(Exception):
    """A stop was asked while no batch is in hand: end the run now, cleanly (exit 0)."""


class ReadinessObserver(Protocol):
    def set_ready(self, ready: bool) -> None: ...


class Health:
    """The worker's ``delivery.Status``: readiness and the give-up deadlines."""

    def __init__(
        self,
        settings: WorkerSettings,
        log: EventLog,
        observer: ReadinessObserver,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.log = log
        self.observer = observer
        self.clock = clock
        self._on_broker_lost: list[Callable[[], None]] = []
        self.broker_ok = True
        self.assigned = False
        self.delivering = True
        self.in_hand = False
        """A batch was polled and is not yet delivered (or rolled back)."""
        self.blocked = False
        """An assigned partition cannot start (``worker.live.positions``)."""
        self.model_stuck = False
        """The model has not returned for half of ``--model-timeout`` (``worker.live.watchdog``)."""
        self.stop_at: float | None = None
        self.starting = True
        """Before the group is joined a stop request aborts start-up (``check`` raises)."""
        self.fatal: KafkaFailure | None = None
        self.fatal_repeats = 0
        """How many times the first fatal error came again, identical (not logged again)."""
        self._down_since = 0.0
        self.registry_ok = True
        """The Schema Registry answered the last question (``--value-format avro``...)."""
        self._registry_down_since = 0.0
        self._next_probe = 0.0
        self._ready = False
        self.backoff = Backoff(
            settings.retry_backoff_initial_ms / 1e3, settings.retry_backoff_max_ms / 1e3
        )

    def stop(self) -> None:
        if self.stop_at is None:
            self.stop_at = self.clock()
            self._update()

    def set_assigned(self, assigned: bool) -> None:
        self.assigned = assigned
        self._update()

    def set_delivering(self, delivering: bool) -> None:
        """False after a batch was rolled back, True once a batch is delivered."""
        self.delivering = delivering
        self._update()

    def set_blocked(self, blocked: bool) -> None:
        if blocked != self.blocked:
            self.blocked = blocked
            self._update()

    def set_model_stuck(self, stuck: bool) -> None:
        """From the watchdog's thread, while the loop's is stuck in the model."""
        self.model_stuck = stuck
        self._update()

    def when_broker_lost(self, call: Callable[[], None]) -> None:
        """Have ``call`` run each time the broker goes away (delivery, built after this
        object it reports to, drops state cached from before the outage)."""
        self._on_broker_lost.append(call)

    def unavailable(self, detail: str) -> None:
        if self.broker_ok:
            self.broker_ok = False
            for lost in self._on_broker_lost:
                lost()
            self._down_since = self._next_probe = self.clock()
            self.log.error("broker_unavailable", detail=detail)
            self._update()

    def available(self) -> None:
        if not self.broker_ok:
            self.broker_ok = True
            self.backoff.reset()
            self.log.emit("broker_available", down_s=round(self.clock() - self._down_since, 3))
            self._update()

    def registry_unavailable(self, detail: str) -> None:
        """The Schema Registry did not answer: not ready, the give-up clock runs."""
        if self.registry_ok:
            self.registry_ok = False
            self._registry_down_since = self.clock()
            self.log.error("registry_unavailable", detail=detail)
            self._update()

    def registry_available(self) -> None:
        if not self.registry_ok:
            self.registry_ok = True
            self.backoff.reset()
            down_s = round(self.clock() - self._registry_down_since, 3)
            self.log.emit("registry_available", down_s=down_s)
            self._update()

    def check(self) -> None:
        """Raise RuntimeFailure when a fatal error was seen or a give-up deadline passed;
        ``Stopped`` when a stop was asked and no batch is in hand."""
        if self.fatal is not None:
            seen = f" (reported {self.fatal_repeats + 1} times)" if self.fatal_repeats else ""
            raise RuntimeFailure(f"{self.fatal.kind.value}: {self.fatal}{seen}")
        if self.starting and self.stop_at is not None:
            raise StartupAborted()
        now, s = self.clock(), self.settings
        if self.stop_at is not None and not self.in_hand:
            raise Stopped()
        if self.stop_at is not None and now - self.stop_at > s.shutdown_timeout_s:
            raise RuntimeFailure(
                f"stopping: the batch in hand was not committed within "
                f"{s.shutdown_timeout_s:g}s; it will be processed again"
            )
        limit = s.broker_timeout_s
        if not self.broker_ok and limit and now - self._down_since > limit:
            raise RuntimeFailure(f"broker {s.bootstrap_servers} unreachable for {limit:g}s")
        if not self.registry_ok and limit and now - self._registry_down_since > limit:
            raise RuntimeFailure(f"schema registry unreachable for {limit:g}s")

    def on_kafka_error(self, problem: KafkaFailure) -> None:
        """librdkafka's error callback and the poll's error messages land here."""
        if problem.kind in FATAL_KINDS:
            s = self.settings
            problem = with_acl(with_acl(problem, "READ", [s.input_topic]), "READ", [s.group_id])
            if self.fatal is not None and _shape(problem) == _shape(self.fatal):
                # librdkafka reports a refused handshake once per connection attempt, dozens
                # in a millisecond, differing only in their timings ("after 8ms"): one
                # line, the count kept for the exit line (issue 28)
                self.fatal_repeats += 1
                return
            self.fatal = self.fatal or problem
            event = "fenced" if problem.kind == FailureKind.FENCED else "error"
            self.log.error(event, error=str(problem))
        elif problem.broker_down:
            self.unavailable(str(problem))
        else:
            key = f"kafka:{problem.code}"
            self.log.limited(key, 10.0, "kafka_error", "warning", error=str(problem))

    def probe(self, ask_broker: Callable[[], object]) -> None:
        """While the broker is away, ask it (a metadata request) with backoff."""
        if self.broker_ok or self.clock() < self._next_probe:
            return
        try:
            ask_broker()
        except KafkaFailure:
            self._next_probe = self.clock() + self.backoff.next_s
            self.backoff.next_s = min(self.backoff.next_s * 2, self.backoff.max_s)
            return
        self.available()

    def _update(self) -> None:
        ready = (
            self.broker_ok
            and self.registry_ok
            and self.assigned
            and self.delivering
            and not self.blocked
            and not self.model_stuck
            and self.stop_at is None
        )
        if ready != self._ready:
            self._ready = ready
            self.observer.set_ready(ready)
