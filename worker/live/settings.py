"""The live worker's settings: one frozen model, read from options and ``SCORING_WORKER_*``.

How it reaches Kafka and the Schema Registry (bootstrap servers, ``--broker-timeout``, the
librdkafka passthrough properties and their rules, the registry options) is
``worker.kafka.settings.KafkaSettings``, the same for every command; this adds what only
`run` has: topics, group, delivery, batches, metrics, drift, formats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from worker.core.sizes import DEFAULT_MAX_EVENT_BYTES
from worker.core.wire import REGISTRY_UNUSED, OutputFormat, ValueFormat
from worker.kafka.properties import ENV_PREFIX
from worker.kafka.registry import RegistrySettings
from worker.kafka.settings import BROKER_TIMEOUT_ENV, KafkaSettings

# one environment name per setting: the option's (``--idle-timeout``), not the field's
IDLE_TIMEOUT_ENV = ENV_PREFIX + "IDLE_TIMEOUT"
MODEL_TIMEOUT_ENV = ENV_PREFIX + "MODEL_TIMEOUT"
RUN_BROKER_TIMEOUT_S = 300.0
"""`run`'s ``--broker-timeout`` default (the one-shot commands': 30 s)."""

METADATA_REFRESH_MS = 10_000
"""How often the consumer refreshes topic metadata, so new input partitions are found."""
KEYED_PARTITIONER = "murmur2_random"
"""librdkafka's name for the Java clients' default partitioner."""

Delivery = Literal["exactly-once", "at-least-once"]


class WorkerSettings(KafkaSettings):
    """Everything `scoring-worker run` needs; built once at start and never changed."""

    bundle: Path
    """Bundle directory, loaded and self-checked before the worker joins the group."""
    input_topic: str
    """Topic of input events."""
    output_topic: str
    """Topic the prediction records go to (key = input key)."""
    dlq_topic: str | None = None
    """Dead-letter topic for rejected events; without it rejects are only counted."""
    group_id: str = "scoring-worker"
    """Consumer group; also the first half of the transactional id."""
    instance_id: str | None = None
    """Stable name of this replica (transactional id ``<group>-<instance>``); None: derived."""
    delivery: Delivery = "exactly-once"
    """``exactly-once`` (one transaction per batch) or ``at-least-once``."""
    max_events: int | None = Field(default=None, ge=1)
    """Stop after this many events were consumed and committed (None: run until stopped)."""
    idle_timeout_s: float | None = Field(default=None, gt=0, validation_alias=IDLE_TIMEOUT_ENV)
    """Stop after this many seconds without a new event while the broker answers
    (option ``--idle-timeout``)."""
    max_batch_events: int = Field(default=5000, ge=1, le=100_000)
    """A micro-batch closes at this many events..."""
    max_batch_age_ms: int = Field(default=5, ge=0, le=60_000)
    """A batch is what arrived while the previous one was processed, up to
    ``max_batch_events``; after an idle wait, its first event waits this long for others."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics/health HTTP server binds to: loopback unless told otherwise
    (the container sets 0.0.0.0)."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of ``/metrics``, ``/healthz``, ``/readyz``; None: no HTTP server."""
    metrics_web_config: Path | None = None
    """Prometheus exporter web config file: HTTPS (``tls_server_config``) and basic auth on
    ``/metrics`` (``basic_auth_users``, bcrypt); None: plain HTTP without auth."""
    drift_window_events: int | None = Field(default=10_000, gt=0)
    """Drift is computed over (at least) the most recent this many scored events."""
    drift_window_s: float | None = Field(default=None, gt=0)
    """...or over the events scored in the last this many seconds (both: whichever is set)."""
    psi_warning: float = Field(default=0.1, gt=0)
    """PSI above which drift deserves a look (exported for the alert rules)."""
    psi_critical: float = Field(default=0.25, gt=0)
    """PSI above which drift is significant (exported for the alert rules)."""
    id_field: str | None = None
    """Event id field (default: the bundle's id column, else ``event_id``)."""
    max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, ge=1)
    """Events larger than this are rejected as ``too_large`` without being parsed."""
    max_dead_letter_bytes: int = Field(default=900_000, ge=1024)
    """A dead letter's value is cut to this size (header ``scoring.value.truncated``) so the
    DLQ accepts it under Kafka's default 1 MB message limit."""
    dlq_max_message_bytes: int | None = Field(default=None, ge=1)
    """The DLQ topic's ``max.message.bytes``, read from the broker at start-up: dead letters
    are cut to fit under it (None: not known, only ``max_dead_letter_bytes`` applies)."""
    warn_only: bool = False
    """Start even when the bundle self-check finds differences (warn instead)."""
    broker_timeout_s: float = Field(
        default=RUN_BROKER_TIMEOUT_S, ge=0, validation_alias=BROKER_TIMEOUT_ENV
    )
    """Give up (exit 3) after the broker was unreachable this long; 0: never (option
    ``--broker-timeout``, environment ``SCORING_WORKER_BROKER_TIMEOUT``)."""
    model_timeout_s: float = Field(default=60.0, ge=0, validation_alias=MODEL_TIMEOUT_ENV)
    """A batch the model has scored this long: log the scoring thread's stack and exit 3
    (not ready from half of it); 0: report only, never exit (option ``--model-timeout``,
    environment ``SCORING_WORKER_MODEL_TIMEOUT``)."""
    retry_backoff_initial_ms: int = Field(default=100, ge=1)
    """First wait before retrying a failed broker operation; doubles on each retry..."""
    retry_backoff_max_ms: int = Field(default=5000, ge=1)
    """...up to this."""
    shutdown_timeout_s: float = Field(default=30.0, gt=0)
    """After SIGTERM/SIGINT, how long the batch in hand may take to commit."""
    value_format: ValueFormat = ValueFormat.JSON
    """What event values are: ``json``, or the Confluent wire format with ``avro`` or
    ``json-schema`` (writer schemas from the Schema Registry)."""
    output_format: OutputFormat = OutputFormat.JSON
    """What prediction records are on the output (and challenger) topic: ``json``, or
    ``avro`` in the Confluent wire format, the schema registered under ``<topic>-value``."""

    # --- derived values -------------------------------------------------------------------

    def registry(self) -> RegistrySettings | None:
        """The Schema Registry settings; None for plain JSON. ValueError when a wire
        format has no registry URL."""
        registry = self.registry_settings()
        if self.value_format is ValueFormat.JSON and self.output_format is OutputFormat.JSON:
            if registry is not None:  # as the other commands: say it
                raise ValueError(REGISTRY_UNUSED)
            return None
        if registry is None:
            needs = (
                f"--value-format {self.value_format.value}"
                if self.value_format is not ValueFormat.JSON
                else "--output-format avro"
            )
            raise ValueError(f"{needs} needs --schema-registry-url")
        return registry

    @property
    def transactional_id(self) -> str:
        """Stable per instance, so a restarted replica fences its predecessor at once."""
        return f"{self.group_id}-{self.instance_id or 'default'}"

    @property
    def client_id(self) -> str:
        return f"scoring-worker-{self.instance_id or 'default'}"

    def consumer_config(self) -> dict[str, Any]:
        """librdkafka consumer properties (secrets revealed: hand only to the client)."""
        base: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "max.partition.fetch.bytes": 1_048_576,
            # What librdkafka prefetches ahead of the loop: by default up to 100,000
            # messages per partition and 64 MiB, held (with the fetch buffers they share)
            # for the life of a backlog: 50 MiB of the worker's peak RSS on 200,000 events.
            # Bounded, a partition whose queue is full is fetched again only after
            # fetch.queue.backoff.ms (1,000 by default: the loop then waited for fetches,
            # half the throughput); 10 ms keeps the queue filled (docs/benchmarks.md).
            "queued.min.messages": 10_000,
            "queued.max.messages.kbytes": 16_384,
            "fetch.queue.backoff.ms": 10,
            # Partitions added to the input topic are found (and a rebalance assigns them)
            # at the next metadata refresh: librdkafka's 5 minutes left their events
            # unread and without a lag series that long (issue 28).
            "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS,
        }
        forced = {
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "isolation.level": "read_committed",
            # The worker decides where each partition starts (worker.live.positions) and
            # assigns it there itself; librdkafka must never reset a position silently.
            "auto.offset.reset": "error",
            "partition.assignment.strategy": "cooperative-sticky",
        }
        return {**base, **self.kafka_properties("consumer"), **forced}

    def producer_config(self) -> dict[str, Any]:
        """librdkafka producer properties for the chosen delivery mode."""
        base: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "linger.ms": 5,
            "acks": "all",
            # A transaction's first produce after the previous commit is often refused
            # with CONCURRENT_TRANSACTIONS while the broker writes the commit markers, and
            # librdkafka retries after retry.backoff.ms, doubling up to retry.backoff.max.ms
            # (100 and 1000 by default; the Java client waits 20 ms, KAFKA-5477). At 5,000
            # events/s that put the p99 event latency at 243 ms; with 10 and 50, 64-70 ms
            # (docs/benchmarks.md).
            "retry.backoff.ms": 10,
            # The Java clients' partitioner (murmur2 of the key; a random partition for a
            # null key): a key's prediction goes to the partition a Java producer would
            # choose, so the output topic can be co-partitioned with the input for joins.
            # librdkafka's default (consistent_random, CRC32) chooses another (issue 28).
            "partitioner": KEYED_PARTITIONER,
        }
        forced: dict[str, Any] = {"enable.idempotence": True}
        if self.delivery == "exactly-once":
            forced["transactional.id"] = self.transactional_id
        config = {**base, **self.kafka_properties("producer"), **forced}
        # a user's larger retry.backoff.ms would otherwise be clamped to this maximum
        config.setdefault("retry.backoff.max.ms", max(50, int(config["retry.backoff.ms"])))
        return config
