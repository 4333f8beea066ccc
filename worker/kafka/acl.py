"""Which ACL a broker's authorization error asks for, in the words of ``kafka-acls``:
the one place the worker words an authorization refusal, for `run` and the one-shot
commands alike.

librdkafka says only ``TOPIC_AUTHORIZATION_FAILED``; the worker knows what it was doing
(reading the input topic in its group, writing predictions and dead letters, creating or
describing a topic, publishing in one transaction), so its one-line error can name the
missing ACL.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.kafka.types import KafkaFailure

_RESOURCES = {
    "TOPIC_AUTHORIZATION_FAILED": "topic",
    "GROUP_AUTHORIZATION_FAILED": "group",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED": "transactional-id",
}


def needs_acl(operation: str, resource: str, names: Iterable[str], prefixed: bool = False) -> str:
    """``needs ACL ALLOW <operation> on <resource> <names>`` (names sorted, once each)."""
    listed = ", ".join(sorted(set(names))) or "?"
    pattern = " (--resource-pattern-type prefixed)" if prefixed else ""
    return f"needs ACL ALLOW {operation} on {resource} {listed}{pattern}"


def with_acl(exc: KafkaFailure, operation: str, names: Iterable[str]) -> KafkaFailure:
    """``exc`` plus ``; needs ACL ALLOW <operation> on <resource> <names>`` when it is an
    authorization error; anything else unchanged. ``names``: the resources concerned."""
    resource = _RESOURCES.get(exc.code)
    if resource is None:
        return exc
    hint = f"{exc.reason}; {needs_acl(operation, resource, names)}"
    return KafkaFailure(exc.kind, exc.code, hint, exc.broker_down)


def missing_topic(topic: str) -> str:
    """A topic the metadata does not list: absent, or hidden from this principal (a
    broker lists only the topics it may DESCRIBE)."""
    return (
        f"topic {topic} does not exist, or this principal may not see it "
        f"({needs_acl('DESCRIBE', 'topic', [topic])})"
    )
