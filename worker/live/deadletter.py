"""Rejected events as dead-letter messages: the original bytes, and why in the headers.

Pure: a scored batch in, ``Outgoing`` messages out. The value is the event's bytes
untouched, except that a value longer than the DLQ can take is cut (the header
``scoring.value.truncated`` then carries the original length), so one oversized event
can never wedge the worker on a produce the broker will always refuse.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.records import DeadLetter, SourceRef
from worker.core.scoring import InputEvent, Rejected
from worker.kafka.clients import Outgoing

HEADER_TRUNCATED = "scoring.value.truncated"


def dead_letter(event: InputEvent, rejected: Rejected, bundle_digest: str) -> DeadLetter:
    source = SourceRef(
        topic=event.topic,
        partition=event.partition,
        offset=event.offset,
        timestamp=event.timestamp_ms,
    )
    return DeadLetter(
        reason=rejected.rejection.reason,
        detail=rejected.rejection.detail,
        source=source,
        bundle_digest=bundle_digest,
        value=event.value,
    )


def to_message(letter: DeadLetter, topic: str, key: bytes | None, max_value_bytes: int) -> Outgoing:
    """The Kafka message of one dead letter: value = original bytes, headers = why."""
    headers = letter.headers()
    value = letter.value
    if value is not None and len(value) > max_value_bytes:
        headers.append((HEADER_TRUNCATED, str(len(value)).encode()))
        value = value[:max_value_bytes]
    return Outgoing(topic=topic, value=value, key=key, headers=headers)


def dead_letter_messages(
    events: Sequence[InputEvent],
    rejected: Sequence[Rejected],
    *,
    topic: str,
    bundle_digest: str,
    max_value_bytes: int,
) -> list[Outgoing]:
    """One message per rejected event, in batch order, keyed like the input."""
    return [
        to_message(
            dead_letter(events[r.index], r, bundle_digest),
            topic,
            events[r.index].key,
            max_value_bytes,
        )
        for r in rejected
    ]
