"""One way to wait: call a probe until it answers, against a deadline; nothing sleeps to sync."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import KafkaException

_T = TypeVar("_T")


def poll_until(
    what: str,
    deadline_s: float,
    probe: Callable[[], _T | None],
    every_s: float = 0.05,
    *,
    error: Callable[[str], BaseException] = TimeoutError,
) -> _T:
    """Call ``probe`` every ``every_s`` seconds until it returns non-None, and return that.

    A KafkaException from ``probe`` counts as "not yet" (a coordinator still loading, a
    topic not yet in metadata) and is quoted if time runs out. After ``deadline_s`` seconds
    raises ``error("<what>: not done within <deadline_s>s")``: TimeoutError by default,
    the caller's own class (bench's BenchError, the demo's SystemExit) otherwise.
    """
    deadline = time.monotonic() + deadline_s
    last_error: KafkaException | None = None
    while True:
        try:
            result = probe()
        except KafkaException as exc:
            result, last_error = None, exc
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise error(f"{what}: not done within {deadline_s:g}s{detail}")
        time.sleep(every_s)
