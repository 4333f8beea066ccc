"""Topic administration: what a topic accepts, and creating topics (`topics create`).

Every call has a deadline (``timeout_s``); a broker that does not answer within it is a
``KafkaFailure`` (``broker_down`` when nothing answered at all), an error the broker
returns is a ``KafkaFailure`` of its own code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.cimpl import NewTopic

from worker.kafka.errors import failure, from_exception
from worker.kafka.types import FailureKind, KafkaFailure

MAX_MESSAGE_BYTES = "max.message.bytes"
POLL_S = 0.05


def admin_client(config: Mapping[str, Any], logger: logging.Logger | None = None) -> AdminClient:
    """An AdminClient whose librdkafka log lines go to ``logger`` (never raw to stderr)."""
    extra: dict[str, Any] = {"logger": logger} if logger is not None else {}
    return AdminClient({**config, **extra})


def _result(future: Any, what: str, timeout_s: float) -> Any:
    """A future's value; KafkaFailure for a broker error or no answer within ``timeout_s``."""
    try:
        return future.result(timeout_s)
    except KafkaException as exc:
        raise from_exception(exc) from None
    except TimeoutError:
        raise KafkaFailure(
            FailureKind.RETRIABLE, "_TIMED_OUT", f"{what}: no answer within {timeout_s:g}s", True
        ) from None


def topic_configs(admin: AdminClient, topic: str, timeout_s: float) -> dict[str, str]:
    """Every config entry of ``topic`` (the broker's defaults included)."""
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    futures = admin.describe_configs([resource], request_timeout=timeout_s)
    entries = _result(futures[resource], f"configs of {topic}", timeout_s)
    return {name: entry.value for name, entry in entries.items() if entry.value is not None}


def alter_topic_configs(
    admin: AdminClient, topic: str, configs: Mapping[str, str], timeout_s: float
) -> None:
    """Set ``configs`` on ``topic`` (an incremental alter: other configs stay as they are);
    KafkaFailure for what the broker refuses (``INVALID_CONFIG``, ``POLICY_VIOLATION``...)."""
    entries = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ]
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
    futures = admin.incremental_alter_configs([resource], request_timeout=timeout_s)
    _result(futures[resource], f"altering {topic}", timeout_s)


def max_message_bytes(
    admin: AdminClient, topics: Sequence[str], timeout_s: float
) -> dict[str, int]:
    """Topic -> its ``max.message.bytes``: the largest record batch it accepts."""
    return {t: int(topic_configs(admin, t, timeout_s)[MAX_MESSAGE_BYTES]) for t in topics}


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create."""

    name: str
    partitions: int = 1
    replication_factor: int | None = None
    """None: the broker's ``default.replication.factor``."""
    configs: Mapping[str, str] = field(default_factory=dict)


def create_topic(admin: AdminClient, spec: TopicSpec, timeout_s: float) -> bool:
    """Create ``spec`` and wait until every partition has a leader; False when a topic of
    that name exists already (left as it is). KafkaFailure for anything the broker refuses
    (``INVALID_REPLICATION_FACTOR``, ``INVALID_CONFIG``, ``POLICY_VIOLATION``...)."""
    new = NewTopic(
        spec.name,
        num_partitions=spec.partitions,
        replication_factor=spec.replication_factor or -1,
        config=dict(spec.configs),
    )
    futures = admin.create_topics([new], operation_timeout=timeout_s, request_timeout=timeout_s)
    try:
        _result(futures[spec.name], f"creating {spec.name}", timeout_s)
    except KafkaFailure as exc:
        if exc.code == "TOPIC_ALREADY_EXISTS":
            return False
        raise
    wait_for_leaders(admin, spec.name, timeout_s)
    return True


def wait_for_leaders(admin: AdminClient, topic: str, timeout_s: float) -> int:
    """Poll metadata until every partition of ``topic`` has a leader; its partition count."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            meta = admin.list_topics(topic, timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise from_exception(exc) from None
        partitions = meta.partitions.values() if meta is not None and meta.error is None else []
        if partitions and all(p.leader >= 0 and p.error is None for p in partitions):
            return len(partitions)
        if time.monotonic() > deadline:
            error = KafkaError(KafkaError._TIMED_OUT, f"{topic}: a partition has no leader yet")
            raise failure(error)
        time.sleep(POLL_S)


def partition_counts(admin: AdminClient, timeout_s: float) -> dict[str, int]:
    """Topic -> partitions, from one metadata request for every topic (asking for one
    topic by name could auto-create it on a broker that allows that)."""
    try:
        topics = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise from_exception(exc) from None
    return {name: len(meta.partitions) for name, meta in topics.items() if meta.error is None}
