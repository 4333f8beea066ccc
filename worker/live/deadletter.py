"""Rejected events as dead-letter messages: the original bytes, and why in the headers.

Pure: a scored batch in, ``Outgoing`` messages out. The value is the event's bytes
untouched, except that a value longer than the DLQ can take is cut (the header
``scoring.value.truncated`` then carries the original length), so one oversized event
can never wedge the worker on a produce the broker will always refuse. What the DLQ can
take is the smaller of ``max_value_bytes`` (a setting) and what fits, with key, headers
and Kafka's record framing, under the DLQ topic's own ``max.message.bytes``.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.records import DeadLetter, SourceRef
from schemas.wire_names import HEADER_TRUNCATED
from worker.core.events import InputEvent
from worker.core.model_errors import ModelErrorRejection
from worker.core.scoring import Rejected
from worker.kafka.clients import Outgoing

BATCH_OVERHEAD_BYTES = 61 + 40
"""A record batch's header, and one record's fixed fields at their largest (varints)."""
HEADER_OVERHEAD_BYTES = 10
"""Per header: the two length varints at their largest."""


def value_budget(
    key: bytes | None, headers: list[tuple[str, bytes]], max_message_bytes: int
) -> int:
    """Bytes left for the value of a one-record batch under ``max_message_bytes``."""
    framing = BATCH_OVERHEAD_BYTES + len(key or b"")
    framing += sum(HEADER_OVERHEAD_BYTES + len(k.encode()) + len(v) for k, v in headers)
    return max_message_bytes - framing


def dead_letter(event: InputEvent, rejected: Rejected, bundle_digest: str) -> DeadLetter:
    source = SourceRef(
        topic=event.topic,
        partition=event.partition,
        offset=event.offset,
        timestamp=event.timestamp_ms,
    )
    rejection = rejected.rejection
    error = rejection if isinstance(rejection, ModelErrorRejection) else None
    return DeadLetter(
        reason=rejection.reason,
        detail=rejection.detail,
        source=source,
        bundle_digest=bundle_digest,
        value=event.value,
        error_type=error.error_type if error else None,
        error_message=error.error_message if error else None,
    )


def to_message(
    letter: DeadLetter,
    topic: str,
    key: bytes | None,
    max_value_bytes: int,
    max_message_bytes: int | None = None,
) -> Outgoing:
    """The Kafka message of one dead letter: value = original bytes, headers = why; a
    value cut to ``max_value_bytes`` and to what fits under ``max_message_bytes``."""
    headers = letter.headers()
    value = letter.value
    if value is None:
        return Outgoing(topic=topic, value=value, key=key, headers=headers)
    limit = max_value_bytes
    if max_message_bytes is not None:
        cut_header = (HEADER_TRUNCATED, str(len(value)).encode())
        limit = min(limit, value_budget(key, [*headers, cut_header], max_message_bytes))
    if len(value) > limit:
        headers.append((HEADER_TRUNCATED, str(len(value)).encode()))
        value = value[: max(limit, 0)]
    return Outgoing(topic=topic, value=value, key=key, headers=headers)


def dead_letter_messages(
    events: Sequence[InputEvent],
    rejected: Sequence[Rejected],
    *,
    topic: str,
    bundle_digest: str,
    max_value_bytes: int,
    max_message_bytes: int | None = None,
) -> list[Outgoing]:
    """One message per rejected event, in batch order, keyed like the input;
    ``max_message_bytes``: the DLQ topic's ``max.message.bytes`` (None: not known)."""
    return [
        to_message(
            dead_letter(events[r.index], r, bundle_digest),
            topic,
            events[r.index].key,
            max_value_bytes,
            max_message_bytes,
        )
        for r in rejected
    ]
