"""Plain types of the Kafka edge, usable without importing confluent_kafka.

``worker.kafka.clients`` (the only module importing confluent_kafka) produces and consumes
these; everything above it (loop, delivery, replay) speaks only these.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:  # importing it would import pandas: `topics create` has no use for it
    from worker.core.events import InputEvent

Partition = tuple[str, int]
"""(topic, partition)"""
ErrorHandler = Callable[["KafkaFailure"], None]


class FailureKind(StrEnum):
    RETRIABLE = "retriable"  # the broker may answer later: retry the same call
    ABORTABLE = "abortable"  # the open transaction must be aborted, then the batch redone
    REBALANCE = "rebalance"  # the group moved on: this member's generation is stale
    FENCED = "fenced"  # another producer owns the transactional id: stop
    AUTH = "auth"  # authentication or authorisation refused: stop
    FATAL = "fatal"  # the client instance is unusable: recreate it
    OTHER = "other"


PER_MESSAGE_CODES = frozenset(
    {
        "MSG_SIZE_TOO_LARGE",
        "INVALID_MSG",
        "INVALID_MSG_SIZE",
        "INVALID_RECORD",
        "INVALID_TIMESTAMP",
        "RECORD_LIST_TOO_LARGE",
        "_INVALID_ARG",
    }
)
"""Errors about one message's content: producing that message again can never succeed."""


class KafkaFailure(Exception):
    """A librdkafka error, with how to route it."""

    def __init__(self, kind: FailureKind, code: str, reason: str, broker_down: bool = False):
        super().__init__(f"{code}: {reason}")
        self.kind = kind
        self.code = code
        self.reason = reason
        self.broker_down = broker_down
        self.message: Outgoing | None = None
        """The message a produce call or delivery report failed for, when known."""
        self.partition: Partition | None = None
        """The partition a consumer error message was about, if any."""

    @property
    def refuses_message(self) -> bool:
        """True for a per-message produce error that will never succeed (message known)."""
        return self.message is not None and self.code in PER_MESSAGE_CODES


def refused_messages(*found: KafkaFailure | list[KafkaFailure] | None) -> list[KafkaFailure]:
    """The failures among ``found`` (single ones or lists) that refuse a known message."""
    flat: list[KafkaFailure] = []
    for item in found:
        flat += item if isinstance(item, list) else [item] if item is not None else []
    return [f for f in flat if f.refuses_message]


class Outgoing(NamedTuple):
    """One message to produce. A NamedTuple: one is made per prediction, and a frozen
    dataclass costs twice as much to build (0.5 us against 0.23 us)."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(slots=True)
class Polled:
    """What one poll returned: events, and the errors that came instead of messages."""

    events: list[InputEvent] = field(default_factory=list)
    failures: list[KafkaFailure] = field(default_factory=list)


@dataclass(slots=True)
class CommittedOffsets:
    """The group's committed offsets for some partitions, as one stable-offset fetch
    (KIP-447 ``require_stable``) answered them; every partition asked is in one field."""

    offsets: dict[Partition, int] = field(default_factory=dict)
    """Next offset to read, for partitions with a committed offset."""
    missing: list[Partition] = field(default_factory=list)
    """Partitions the group has never committed an offset for."""
    unstable: list[Partition] = field(default_factory=list)
    """Partitions whose offsets a transaction still holds (UNSTABLE_OFFSET_COMMIT)."""
    failed: dict[Partition, str] = field(default_factory=dict)
    """Partitions the broker answered with another error (code: reason)."""


class RebalanceListener(Protocol):
    def on_assigned(self, partitions: list[Partition]) -> None: ...
    def on_revoked(self, partitions: list[Partition]) -> None: ...
    def on_lost(self, partitions: list[Partition]) -> None: ...


class Call:
    """A blocking client call run in a helper thread, so the caller can wait for it in
    slices (reporting readiness meanwhile) and give up on it: librdkafka may overrun the
    timeouts it is given, or never return (librdkafka#5511). A call given up on cannot be
    cancelled: its client must not be used, nor closed, by anyone else afterwards."""

    def __init__(self, what: str, operation: Callable[[], Any]) -> None:
        self.what = what
        self._outcome: list[tuple[Any, BaseException | None]] = []
        self._thread = threading.Thread(
            target=self._run, args=(operation,), name=f"kafka-{what}", daemon=True
        )
        self._thread.start()

    def _run(self, operation: Callable[[], Any]) -> None:
        try:
            self._outcome.append((operation(), None))
        except BaseException as exc:  # handed over to the waiting thread
            self._outcome.append((None, exc))

    def wait(self, timeout_s: float) -> bool:
        """True once the call returned (or raised)."""
        self._thread.join(timeout_s)
        return bool(self._outcome)

    def result(self) -> Any:
        """The call's value, or its exception re-raised."""
        if not self._outcome:
            raise KafkaFailure(FailureKind.RETRIABLE, "_HUNG", f"{self.what} has not returned")
        value, error = self._outcome[0]
        if error is not None:
            raise error
        return value
