"""What the output topics accept, read once at start-up.

A topic's ``max.message.bytes`` bounds a whole record batch, and librdkafka packs several
messages for a partition into one batch of up to ``batch.size`` bytes (1,000,000 by
default) without knowing the topic's limit: a DLQ limited to 20,000 bytes would refuse
any batch of two 15 KB dead letters for good. So the producer's ``batch.size`` is capped
at the smallest limit of the topics it writes, and each dead letter is cut to fit alone
(``worker.live.deadletter``).
"""

from __future__ import annotations

import logging
from typing import Any

from worker.kafka.admin import admin_client, max_message_bytes
from worker.kafka.types import KafkaFailure
from worker.live.settings import SCOPES, WorkerSettings
from worker.logs import EventLog

DEFAULT_BATCH_BYTES = 1_000_000
"""librdkafka's ``batch.size`` default."""
BATCH_MARGIN_BYTES = 512
"""``batch.size`` counts librdkafka's framing estimate; leave room for the rest."""


READ_TIMEOUT_S = 10.0
"""At most this long for the limits at start-up; the worker's own start then reports an
unreachable broker or refused credentials with its usual lines and deadlines."""


def read_limits(
    settings: WorkerSettings, logger: logging.Logger | None, log: EventLog
) -> dict[str, int]:
    """Output topic (and DLQ) -> its ``max.message.bytes``; empty, with a ``limits_unknown``
    warning line, when they cannot be read (broker away, credentials refused, no
    DescribeConfigs ACL): dead letters are then only cut to ``max_dead_letter_bytes``."""
    topics = [t for t in (settings.output_topic, settings.dlq_topic) if t]
    timeout_s = min(settings.broker_timeout_s or READ_TIMEOUT_S, READ_TIMEOUT_S)
    admin = admin_client(_admin_config(settings), logger)
    try:
        return max_message_bytes(admin, topics, timeout_s)
    except KafkaFailure as exc:
        log.emit("limits_unknown", "warning", topics=topics, error=str(exc))
        return {}


def _admin_config(settings: WorkerSettings) -> dict[str, Any]:
    """The unscoped passthrough properties (security settings...), no client-only ones."""
    config = settings.kafka_properties("consumer")
    scoped = {k.split(".", 1)[1] for k in settings.kafka if k.split(".", 1)[0] in SCOPES}
    shared = {k: v for k, v in config.items() if k not in scoped}
    return {**shared, "bootstrap.servers": settings.bootstrap_servers}


def fit_batches(config: dict[str, Any], limits: dict[str, int]) -> dict[str, Any]:
    """``config`` with ``batch.size`` no larger than any written topic takes."""
    if not limits:
        return config
    smallest = min(limits.values()) - BATCH_MARGIN_BYTES
    current = int(config.get("batch.size", DEFAULT_BATCH_BYTES))
    if smallest >= current:
        return config
    return {**config, "batch.size": max(smallest, 1)}
