"""Topic administration, the one module for it: partition counts, creating a topic and
waiting for its leaders (`topics create`, `publish`, `replay --output-topic`), topic
configs, and what the output topics accept (``read_limits``, ``fit_batches``: `run`).

A topic's ``max.message.bytes`` bounds a whole record batch, and librdkafka packs several
messages for a partition into one batch of up to ``batch.size`` bytes (1,000,000 by
default) without knowing the topic's limit: a DLQ limited to 20,000 bytes would refuse any
batch of two 15 KB dead letters for good. So the producer's ``batch.size`` is capped at
the smallest limit of the topics it writes, and each dead letter is cut to fit alone
(``worker.live.deadletter``).

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

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.cimpl import NewTopic

from schemas.errors import BadInputError
from worker.kafka.acl import missing_topic
from worker.kafka.connection import Connection
from worker.kafka.errors import call, failure, from_exception
from worker.kafka.settings import KafkaSettings
from worker.kafka.types import FailureKind, KafkaFailure
from worker.logs import EventLog

MAX_MESSAGE_BYTES = "max.message.bytes"
POLL_S = 0.05
DEFAULT_BATCH_BYTES = 1_000_000
"""librdkafka's ``batch.size`` default."""
BATCH_MARGIN_BYTES = 512
"""``batch.size`` counts librdkafka's framing estimate; leave room for the rest."""
READ_LIMITS_TIMEOUT_S = 10.0
"""At most this long for the limits at start-up; the worker's own start then reports an
unreachable broker or refused credentials with its usual lines and deadlines."""


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


# --- partition counts ----------------------------------------------------------------------


def partition_count(
    client: Consumer | Producer | AdminClient, topic: str, timeout_s: float
) -> int | None:
    """Partitions of ``topic`` from a metadata request for it; None when the broker says
    there is no such topic; KafkaFailure for no answer or any other error (an
    authorization error included: the caller's line names the ACL)."""
    meta = call(lambda: client.list_topics(topic, timeout_s)).topics.get(topic)
    if meta is None:
        return None
    if meta.error is not None:
        if meta.error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            return None
        raise failure(meta.error)
    return len(meta.partitions)


def partition_counts(admin: AdminClient, timeout_s: float) -> dict[str, int]:
    """Topic -> partitions of every topic this principal may see, from one metadata
    request (a topic it may not DESCRIBE is not listed: it reads as absent)."""
    try:
        topics = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise from_exception(exc) from None
    return {name: len(meta.partitions) for name, meta in topics.items() if meta.error is None}


def ensure_topic(connection: Connection, topic: str, partitions: int | None) -> int:
    """The partition count of ``topic``, created with ``partitions`` when it does not exist
    (`publish`, `replay --output-topic`). BadInputError when it does not and ``partitions``
    is None, or exists with another count; RuntimeFailure when the broker refuses (naming
    the ACL) or does not answer."""
    admin = admin_client(connection.config(None))
    connection.reach(admin, f"topic {topic}")
    timeout_s = connection.request_s
    try:
        count = partition_counts(admin, timeout_s).get(topic)
        if count is None:
            if partitions is None:
                raise BadInputError(f"{missing_topic(topic)}; give --partitions N to create it")
            create_topic(admin, TopicSpec(topic, partitions), timeout_s)
            count = wait_for_leaders(admin, topic, timeout_s)
    except KafkaFailure as exc:
        acl = f"DESCRIBE on topic {topic} (CREATE, to create it)"
        raise connection.failed(f"topic {topic}", exc, acl) from None
    if partitions is not None and count != partitions:
        raise BadInputError(f"topic {topic} exists with {count} partitions, not {partitions}")
    return count


# --- what the output topics accept ---------------------------------------------------------


def read_limits(
    settings: KafkaSettings,
    topics: Sequence[str],
    logger: logging.Logger | None,
    log: EventLog,
) -> dict[str, int]:
    """Each of ``topics`` -> its ``max.message.bytes``; empty, with a ``limits_unknown``
    warning line, when they cannot be read (broker away, credentials refused, no
    DescribeConfigs ACL): dead letters are then only cut to ``max_dead_letter_bytes``."""
    timeout_s = min(settings.broker_timeout_s or READ_LIMITS_TIMEOUT_S, READ_LIMITS_TIMEOUT_S)
    admin = admin_client(settings.admin_config(), logger)
    try:
        return max_message_bytes(admin, topics, timeout_s)
    except KafkaFailure as exc:
        log.emit("limits_unknown", "warning", topics=list(topics), error=str(exc))
        return {}


def fit_batches(config: dict[str, Any], limits: dict[str, int]) -> dict[str, Any]:
    """``config`` (a producer's) with ``batch.size`` no larger than any written topic takes."""
    if not limits:
        return config
    smallest = min(limits.values()) - BATCH_MARGIN_BYTES
    current = int(config.get("batch.size", DEFAULT_BATCH_BYTES))
    if smallest >= current:
        return config
    return {**config, "batch.size": max(smallest, 1)}
