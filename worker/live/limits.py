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

from worker.errors import RuntimeFailure
from worker.kafka.admin import admin_client, max_message_bytes
from worker.kafka.types import KafkaFailure
from worker.live.settings import SCOPES, WorkerSettings

DEFAULT_BATCH_BYTES = 1_000_000
"""librdkafka's ``batch.size`` default."""
BATCH_MARGIN_BYTES = 512
"""``batch.size`` counts librdkafka's framing estimate; leave room for the rest."""


def read_limits(settings: WorkerSettings, logger: logging.Logger | None) -> dict[str, int]:
    """Output topic (and DLQ) -> its ``max.message.bytes``; RuntimeFailure (one line) when
    the broker does not answer within the broker timeout or a topic does not exist."""
    topics = [t for t in (settings.output_topic, settings.dlq_topic) if t]
    timeout_s = settings.broker_timeout_s or 30.0
    admin = admin_client(_admin_config(settings), logger)
    try:
        return max_message_bytes(admin, topics, timeout_s)
    except KafkaFailure as exc:
        if exc.code in ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC"):
            raise RuntimeFailure(
                f"a topic of {', '.join(topics)} does not exist on {settings.bootstrap_servers}"
                " (scoring-worker topics create makes one)"
            ) from None
        raise RuntimeFailure(
            f"reading the limits of {', '.join(topics)}: broker {settings.bootstrap_servers} "
            f"did not answer within {timeout_s:g}s ({exc})"
        ) from None


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
