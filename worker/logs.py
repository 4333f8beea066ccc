"""Structured log lines: one JSON object per line on stderr, per event of note.

The lines are a contract (tests and operators parse them): every line has ``ts`` (UTC,
ISO 8601), ``level`` and ``event``; the events of the live worker are

    start, assigned, revoked, lost, broker_unavailable, broker_available, rolled_back,
    fenced, kafka_error, librdkafka, stop, error

Nothing is logged per message. Repeated broker noise is rate limited per key.

Secrets never reach a line: every value the worker knows to be one (``keep_secret``: the
values of secret-looking Kafka properties, and any ``--kafka-property`` too malformed to
tell key from value) is replaced by ``**********`` in every log line and in the one-line
error (``redact``), whatever message happens to quote it.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

import orjson

Clock = Callable[[], float]
MASK = "**********"
_secrets: set[str] = set()
_MIN_SECRET = 3
"""Shorter values are not masked: a one- or two-character "secret" would mask half the line."""


def keep_secret(value: str) -> None:
    """From now on, never write ``value`` (nor its JSON-escaped form) in a line."""
    for text in (value, value.strip()):
        if len(text) >= _MIN_SECRET:
            _secrets.add(text)
            _secrets.add(orjson.dumps(text).decode()[1:-1])


def forget_secrets() -> None:
    """Forget every kept secret: for a process that runs several commands in turn (tests call
    ``run_cli`` again and again), so one command's secrets never mask another's lines."""
    _secrets.clear()


def redact(text: str) -> str:
    """``text`` with every kept secret replaced by ``**********`` (longest first, so a
    secret that contains another is masked whole)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class EventLog:
    """Writes JSON lines; thread-safe (librdkafka callbacks may come from poll calls)."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        static: dict[str, Any] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._stream = stream
        self._static = dict(static or {})
        self._lock = threading.Lock()
        self._clock = clock
        self._last: dict[str, float] = {}
        self.lines = 0

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        record = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level,
            "event": event,
            **self._static,
            **fields,
        }
        line = redact(orjson.dumps(record, default=str).decode()) + "\n"
        with self._lock:
            stream = self._stream or sys.stderr
            stream.write(line)
            stream.flush()
            self.lines += 1

    def error(self, event: str, **fields: Any) -> None:
        self.emit(event, "error", **fields)

    def limited(self, key: str, every_s: float, event: str, level: str, **fields: Any) -> None:
        """Emit at most one line per ``key`` every ``every_s`` seconds."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < every_s:
                return
            self._last[key] = now
        self.emit(event, level, **fields)

    def librdkafka_logger(self, name: str = "scoring_worker.librdkafka") -> logging.Logger:
        """A logging.Logger for librdkafka's ``logger`` property: each distinct warning or
        error becomes a ``librdkafka`` line, at most one per ``RDKAFKA_EVERY_S``."""

        def write(key: str, level: str, message: str) -> None:
            self.limited(key, RDKAFKA_EVERY_S, "librdkafka", level, message=message)

        return librdkafka_logger(KafkaLog(write), name)


RDKAFKA_EVERY_S = 60.0
"""The same librdkafka message (numbers aside) is written at most once per this long."""
_NUMBERS = re.compile(r"\d+")


class KafkaLog(logging.Handler):
    """librdkafka's log lines (warnings and worse), never raw on stderr: each goes to
    ``write(key, level, message)``, where ``key`` is the same for the same message but for
    its numbers (timestamps, durations), so a caller can write each distinct one once;
    ``last`` keeps the latest, for an error line to quote."""

    def __init__(self, write: Callable[[str, str, str], None] | None = None) -> None:
        super().__init__(logging.WARNING)
        self._write = write
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()  # "FAC [client#producer-1] [thrd:...]: text"
        facility = message.split(" ", 1)[0]
        text = message.split("]: ", 1)[-1].strip()
        self.last = text
        if self._write is not None:
            level = "error" if record.levelno >= logging.ERROR else "warning"
            self._write(f"rdk:{facility}:{_NUMBERS.sub('#', text)}", level, message)


def librdkafka_logger(handler: KafkaLog, name: str = "scoring_worker.librdkafka") -> logging.Logger:
    """A logger (for librdkafka's ``logger`` property) that hands its lines to ``handler``."""
    logger = logging.getLogger(f"{name}.{id(handler)}")
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    logger.handlers[:] = [handler]
    return logger
