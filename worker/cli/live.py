"""`scoring-worker run`: the live path (SPEC.md "Command line", "Delivery")."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from model_bundles.bundle import Bundle, load_bundle
from schemas.errors import RuntimeFailure
from worker.cli.challengers import challenger_options, load_challengers, pop_challenger_options
from worker.cli.format_options import decoder_of, register_records
from worker.cli.kafka_options import settings_of
from worker.cli.options import bundle_option, trust_options, warn_only_option
from worker.cli.run_options import environment_only_epilog, run_options
from worker.core.record_avro import AvroRecords, subject_of
from worker.core.scoring import BatchScorer
from worker.core.wire import OutputFormat
from worker.kafka.admin import fit_batches, read_limits
from worker.kafka.clients import KafkaFailure
from worker.kafka.offsets import ExplicitStartConsumer
from worker.kafka.offsets_admin import OffsetsAdmin, OffsetsAsker
from worker.kafka.producers import IdempotentProducer, TransactionalProducer
from worker.kafka.registry import RegistrySchemas, RegistrySettings
from worker.kafka.tls import certificate_name_problem
from worker.live.delivery import AtLeastOnce, Backoff, Delivery, ExactlyOnce, Group, Status
from worker.live.instance import claim_instance_id
from worker.live.loop import Worker
from worker.live.ports import NullObserver, Observer, Source
from worker.live.settings import WorkerSettings
from worker.live.stopping import signals
from worker.logs import EventLog


class KafkaConnector:
    """The real Kafka side of a Worker (``loop.Connector``)."""

    def __init__(
        self, settings: WorkerSettings, log: EventLog, limits: dict[str, int] | None = None
    ) -> None:
        self.settings = settings
        self.log = log
        self.logger = log.librdkafka_logger()
        self.limits = limits or {}
        """Output topic -> its max.message.bytes: no record batch may be larger."""

    def source(self, on_error: Callable[[KafkaFailure], None]) -> Source:
        self._consumer = ExplicitStartConsumer(
            self.settings.consumer_config(), on_error, self.logger
        )
        return self._consumer

    def offsets(self) -> OffsetsAsker:
        """After ``source``: committed offsets from the consumer, the rest from an admin client."""
        # the one admin configuration every command uses (unscoped properties only)
        s = self.settings
        config = {**s.admin_config(), "client.id": s.client_id, "logger": self.logger}
        return OffsetsAsker(OffsetsAdmin(config), self._consumer)

    def delivery(self, status: Status, group: Group) -> Delivery:
        s = self.settings
        backoff = Backoff(s.retry_backoff_initial_ms / 1e3, s.retry_backoff_max_ms / 1e3)
        on_error = _producer_errors(self.log)
        config = fit_batches(s.producer_config(), self.limits)
        if s.delivery == "at-least-once":
            return AtLeastOnce(
                lambda: IdempotentProducer(config, on_error, self.logger),
                group,
                status,
                self.log,
                backoff,
            )
        return ExactlyOnce(
            lambda: TransactionalProducer(config, on_error, self.logger),
            group,
            status,
            self.log,
            backoff,
        )


def _producer_errors(log: EventLog) -> Callable[[KafkaFailure], None]:
    """Producer-side errors are acted on where the calls fail; here they are only noted."""

    def note(problem: KafkaFailure) -> None:
        log.limited(f"producer:{problem.code}", 10.0, "kafka_error", "warning", error=str(problem))

    return note


def build_settings(options: dict[str, Any]) -> WorkerSettings:
    """Options given (None = not given) over SCORING_WORKER_* environment, over defaults."""
    given = {k: v for k, v in options.items() if v is not None}
    return settings_of(WorkerSettings, given, click.UsageError)


def _observer(settings: WorkerSettings, bundle: Bundle, stack: ExitStack) -> tuple[Observer, Any]:
    """The loop's observer, and the Prometheus registry it serves on ``--metrics-port``
    (the challengers' metrics join it); ``NullObserver`` and None without a port."""
    if settings.metrics_port is None:
        return NullObserver(), None
    from prometheus_client import CollectorRegistry

    from worker.monitoring.drift import DriftSettings
    from worker.monitoring.http import serve
    from worker.monitoring.metrics import WorkerMetrics
    from worker.monitoring.webconfig import load_web_config

    registry = CollectorRegistry()
    drift = DriftSettings(
        window_events=settings.drift_window_events,
        window_s=settings.drift_window_s,
        psi_warning=settings.psi_warning,
        psi_critical=settings.psi_critical,
    )
    metrics = WorkerMetrics(registry, bundle, drift)
    web = None
    if settings.metrics_web_config is not None:
        try:
            web = load_web_config(settings.metrics_web_config)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    handle = serve(
        registry, settings.metrics_host, settings.metrics_port, lambda: True, metrics.is_ready, web
    )
    stack.callback(handle.close)
    return metrics, registry


def _avro_records(
    settings: WorkerSettings,
    registry: RegistrySettings | None,
    challenger_topic: str | None,
    log: EventLog,
) -> AvroRecords | None:
    """``--output-format avro``: the record schema registered under the subject of the
    output (and challenger) topic, once at start; None for JSON records."""
    if registry is None or settings.output_format is not OutputFormat.AVRO:
        return None
    topics = [settings.output_topic, *filter(None, [challenger_topic])]
    avro = register_records(registry, topics, settings.broker_timeout_s)
    log.emit("registered", subjects={subject_of(t): i for t, i in avro.schema_ids.items()})
    return avro


def _warn(message: str) -> None:
    print(f"scoring-worker: warning: {message}", file=sys.stderr)


@click.command("run")
@bundle_option()
@run_options
@warn_only_option()
@challenger_options
@trust_options()
def run(**options: Any) -> int:
    """Live path: consume, score and produce predictions, exactly once by default."""
    challenger_dirs, challenger_topic = pop_challenger_options(options)
    trust = {
        "trust_packages": options.pop("trust_packages"),
        "trust_code": options.pop("trust_code"),
    }
    signals.install()  # done already by worker.cli.main before the imports; see there
    for required in ("bootstrap_servers", "input_topic", "output_topic"):
        if options.get(required) is None:
            raise click.UsageError(f"missing option --{required.replace('_', '-')}")
    no_dlq = options.pop("no_dlq")
    if options.get("dlq_topic") is None and not no_dlq:
        raise click.UsageError(
            "give --dlq-topic TOPIC for rejected events, or --no-dlq to only count them"
        )
    try:
        settings = build_settings(options)
        registry = settings.registry()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    bundle = load_bundle(Path(settings.bundle), warn_only=settings.warn_only, warn=_warn, **trust)
    with ExitStack() as stack:
        if settings.instance_id is None:
            instance_id, lock = claim_instance_id(settings.group_id)
            if lock is not None:
                stack.callback(lock.close)
            settings = settings.model_copy(update={"instance_id": instance_id})
        log = EventLog(static={"instance": settings.instance_id})
        observer, metrics_registry = _observer(settings, bundle, stack)
        scorer = BatchScorer(
            bundle,
            id_field=settings.id_field,
            max_event_bytes=settings.max_event_bytes,
            decoder=(decoder := decoder_of(settings.value_format)),
        )
        challengers = load_challengers(
            challenger_dirs,
            challenger_topic,
            settings,
            scorer,
            metrics_registry,
            _warn,
            trust,
            log,
        )
        misnamed = certificate_name_problem(settings.consumer_config())
        if misnamed is not None:  # librdkafka would say "check ssl.ca.location", 21 s later
            log.error("error", error=f"auth: {misnamed}")
            raise RuntimeFailure(f"auth: {misnamed}")
        outputs = [t for t in (settings.output_topic, settings.dlq_topic) if t]
        limits = read_limits(settings, outputs, log.librdkafka_logger(), log)  # after local checks
        if settings.dlq_topic and settings.dlq_topic in limits:
            settings = settings.model_copy(
                update={"dlq_max_message_bytes": limits[settings.dlq_topic]}
            )
        avro = _avro_records(settings, registry, challenger_topic, log)
        connector = KafkaConnector(settings, log, limits)
        worker = Worker(
            settings,
            scorer,
            connector,
            log,
            observer,
            extra=challengers,
            schemas=RegistrySchemas(registry) if decoder is not None and registry else None,
            avro=avro,
        )
        signals.attach(worker.request_stop)
        # What start-up loaded (sklearn, pandas, the model) lives as long as the process:
        # frozen, the cyclic collector stops rescanning it every few thousand allocations,
        # which the per-event objects of each batch trigger.
        gc.freeze()
        worker.run()
        if challengers is not None:
            log.emit("challengers", challengers=challengers.summary())
    return 0


run.epilog = environment_only_epilog(run)
