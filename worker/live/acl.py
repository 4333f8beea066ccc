"""Which ACL a broker's authorization error asks for, in the words of ``kafka-acls``.

librdkafka says only ``TOPIC_AUTHORIZATION_FAILED``; the worker knows what it was doing
(reading the input topic in its group, writing predictions and dead letters), so its
one-line error can name the missing ACL.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.kafka.types import KafkaFailure

_RESOURCES = {
    "TOPIC_AUTHORIZATION_FAILED": "topic",
    "GROUP_AUTHORIZATION_FAILED": "group",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED": "transactional-id",
}


def with_acl(exc: KafkaFailure, operation: str, names: Iterable[str]) -> KafkaFailure:
    """``exc`` plus ``; needs ACL ALLOW <operation> on <resource> <names>`` when it is an
    authorization error; anything else unchanged. ``names``: the resources concerned."""
    resource = _RESOURCES.get(exc.code)
    if resource is None:
        return exc
    listed = ", ".join(sorted(set(names))) or "?"
    hint = f"{exc.reason}; needs ACL ALLOW {operation} on {resource} {listed}"
    return KafkaFailure(exc.kind, exc.code, hint, exc.broker_down)
