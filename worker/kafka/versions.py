"""The Kafka client's own versions (``scoring-worker --version``)."""

from __future__ import annotations

import confluent_kafka


def librdkafka_version() -> str:
    """The version of the librdkafka that confluent-kafka runs on, e.g. ``2.6.1``."""
    return str(confluent_kafka.libversion()[0])
