"""One message to score, as read from Kafka or a file line: its value and where it came
from. Light to import (the Kafka clients make one per message)."""

from __future__ import annotations

from typing import NamedTuple

from worker.core.ids import fallback_id


class InputEvent(NamedTuple):
    """One message to score, as read from Kafka or a file line.

    A NamedTuple rather than a frozen dataclass: one is made per message, and a frozen
    dataclass's ``__init__`` (``object.__setattr__`` per field) costs twice as much.
    """

    value: bytes | None
    key: bytes | None = None
    topic: str = ""
    partition: int = 0
    offset: int = 0
    timestamp_ms: int | None = None

    def fallback_id(self) -> str:
        """Event id when the event has no usable id field (``worker.core.ids``)."""
        return fallback_id(self.key, self.value)
