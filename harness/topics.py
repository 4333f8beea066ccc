"""Topics on a real broker: fresh names, create-and-wait-for-leaders, partition counts, delete.

The worker's own `scoring-worker topics create` is what users run; tests, benchmarks and the
demo's checks use these so that a topic exists, with a leader for every partition, before
the first produce (the local broker has auto-creation off).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from harness.polling import poll_until

QUIET: dict[str, Any] = {"log_level": 0}  # no librdkafka log lines while a broker is down


def unique_topic(prefix: str = "it") -> str:
    """A fresh topic name: the prefix (made legal) and 12 random hex digits."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", prefix).strip("-.")[:200] or "it"
    return f"{clean}-{uuid.uuid4().hex[:12]}"


def is_reachable(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when a client gets cluster metadata listing at least one broker."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    try:
        return bool(admin.list_topics(timeout=timeout_s).brokers)
    except KafkaException:
        return False


def partition_count(bootstrap: str, topic: str, timeout_s: float = 10) -> int | None:
    """Partitions of `topic` that have a leader, or None when the topic is unknown."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    meta = admin.list_topics(topic=topic, timeout=timeout_s).topics.get(topic)
    if meta is None or meta.error is not None:
        return None
    return sum(1 for p in meta.partitions.values() if p.leader >= 0 and p.error is None)


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
    deadline_s: float = 30,
) -> None:
    """Create `name` (replication factor 1) and wait until metadata shows every partition
    with a leader; TimeoutError after `deadline_s`, KafkaException when the broker refuses."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    # replication factor -1: the broker's default.replication.factor (3 on the cluster)
    topic = NewTopic(name, partitions, -1, config=dict(config or {}))
    admin.create_topics([topic], operation_timeout=deadline_s)[name].result(timeout=deadline_s)

    def ready() -> bool | None:
        return True if partition_count(bootstrap, name) == partitions else None

    poll_until(f"topic {name} with {partitions} partitions", deadline_s, ready)


def delete_topics(bootstrap: str, names: Sequence[str], deadline_s: float = 30) -> None:
    """Delete topics and wait for the broker to accept the deletion (KafkaException if not)."""
    if names:
        admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
        for future in admin.delete_topics(list(names), operation_timeout=deadline_s).values():
            future.result(timeout=deadline_s)
