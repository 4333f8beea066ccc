"""`scoring-worker run`: the live path (SPEC.md "Command line", "Delivery")."""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

import click
from pydantic import ValidationError

from model_bundles.bundle import Bundle, load_bundle
from worker.cli import early
from worker.cli.options import bundle_option, option, warn_only_option
from worker.core.scoring import BatchScorer
from worker.errors import StartupAborted
from worker.kafka.clients import IdempotentProducer, KafkaFailure, TransactionalProducer
from worker.kafka.offsets import ExplicitStartConsumer
from worker.kafka.offsets_admin import FallbackAsker, OffsetsAdmin, admin_config
from worker.live.delivery import AtLeastOnce, Backoff, Delivery, ExactlyOnce, Group, Status
from worker.live.instance import claim_instance_id
from worker.live.loop import NullObserver, Observer, Source, Worker
from worker.live.settings import WorkerSettings, parse_kafka_property
from worker.logs import EventLog


class KafkaConnector:
    """The real Kafka side of a Worker (``loop.Connector``)."""

    def __init__(self, settings: WorkerSettings, log: EventLog) -> None:
        self.settings = settings
        self.log = log
        self.logger = log.librdkafka_logger()

    def source(self, on_error: Callable[[KafkaFailure], None]) -> Source:
        self._consumer = ExplicitStartConsumer(
            self.settings.consumer_config(), on_error, self.logger
        )
        return self._consumer

    def offsets(self) -> FallbackAsker:
        """After ``source``: committed offsets from the admin client, else the consumer."""
        config = {**admin_config(self.settings.consumer_config()), "logger": self.logger}
        return FallbackAsker(OffsetsAdmin(config, self.settings.group_id), self._consumer)

    def delivery(self, status: Status, group: Group) -> Delivery:
        s = self.settings
        backoff = Backoff(s.retry_backoff_initial_ms / 1e3, s.retry_backoff_max_ms / 1e3)
        on_error = _producer_errors(self.log)
        if s.delivery == "at-least-once":
            return AtLeastOnce(
                lambda: IdempotentProducer(s.producer_config(), on_error, self.logger),
                group,
                status,
                self.log,
                backoff,
            )
        return ExactlyOnce(
            lambda: TransactionalProducer(s.producer_config(), on_error, self.logger),
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
    given = {k: v for k, v in options.items() if v is not None and k != "kafka_property"}
    properties = dict(parse_kafka_property(p) for p in options.get("kafka_property") or ())
    if properties:
        given["kafka"] = properties
    try:
        return WorkerSettings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise click.UsageError(f"{where}: {first['msg']}") from None


def _observer(settings: WorkerSettings, bundle: Bundle, stack: ExitStack) -> Observer:
    if settings.metrics_port is None:
        return NullObserver()
    from prometheus_client import CollectorRegistry

    from worker.monitoring.drift import DriftSettings
    from worker.monitoring.http import serve
    from worker.monitoring.metrics import WorkerMetrics

    registry = CollectorRegistry()
    drift = DriftSettings(
        window_events=settings.drift_window_events,
        window_s=settings.drift_window_s,
        psi_warning=settings.psi_warning,
        psi_critical=settings.psi_critical,
    )
    metrics = WorkerMetrics(registry, bundle, drift)
    handle = serve(
        registry, settings.metrics_host, settings.metrics_port, lambda: True, metrics.is_ready
    )
    stack.callback(handle.close)
    return metrics


class _Signals:
    """SIGTERM/SIGINT handling from the command's first line: before the worker exists a
    signal aborts start-up (``StartupAborted``); then it asks the worker to stop. A second
    signal ends the process at once."""

    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.received = ""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name
        signal.signal(signum, signal.SIG_DFL)
        if self.worker is None:
            raise StartupAborted()
        self.worker.request_stop(self.received)


def _warn(message: str) -> None:
    print(f"scoring-worker: warning: {message}", file=sys.stderr)


@click.command("run")
@bundle_option()
@option("--bootstrap-servers", default=None, help="Kafka bootstrap servers [required]")
@option("--input-topic", default=None, help="topic of input events [required]")
@option("--output-topic", default=None, help="topic of prediction records [required]")
@option("--dlq-topic", default=None, help="dead-letter topic for rejected events")
@option("--group-id", default=None, help="consumer group (default scoring-worker)")
@option("--instance-id", default=None, help="stable replica name (default <host>-<slot>)")
@option("--delivery", type=click.Choice(["exactly-once", "at-least-once"]), default=None)
@option("--max-events", type=click.IntRange(1), default=None, help="stop after N events")
@option(
    "--idle-timeout",
    "idle_timeout_s",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="stop after SECONDS without events",
)
@option("--max-batch-events", type=click.IntRange(1), default=None, help="batch size cap (5000)")
@option(
    "--max-batch-age-ms",
    type=click.IntRange(0),
    default=None,
    help="after an idle wait, how long a batch waits for more events (5)",
)
@option("--metrics-host", default=None, help="metrics bind address (127.0.0.1)")
@option("--metrics-port", type=click.IntRange(0, 65535), default=None, help="serve /metrics")
@option("--drift-window-events", type=click.IntRange(1), default=None, help="drift window (10000)")
@option("--drift-window-s", type=click.FloatRange(0, min_open=True), default=None,
        help="drift window in seconds (unset)")  # fmt: skip
@option("--psi-warning", type=click.FloatRange(0, min_open=True), default=None, help="(0.1)")
@option("--psi-critical", type=click.FloatRange(0, min_open=True), default=None, help="(0.25)")
@option("--id-field", default=None, help="event id field (default: the bundle's id column)")
@option("--max-event-bytes", type=click.IntRange(1), default=None, help="reject larger events")
@option(
    "--kafka-property",
    multiple=True,
    metavar="KEY=VALUE",
    help="librdkafka property (repeatable; consumer./producer. prefix scopes it)",
)
@warn_only_option()
def run(**options: Any) -> int:
    """Live path: consume, score and produce predictions, exactly once by default."""
    signals = _Signals()  # first: a signal at any moment of start-up is a clean stop
    try:
        if early.received:  # came while the process was importing its modules
            signals.received = early.received[0]
            raise StartupAborted()
        return _run(signals, options)
    except StartupAborted:
        log = EventLog(static={"instance": options.get("instance_id")})
        log.emit("stop", reason=signals.received, during="start-up", consumed=0, produced=0)
        return 0


def _run(signals: _Signals, options: dict[str, Any]) -> int:
    for required in ("bootstrap_servers", "input_topic", "output_topic"):
        if options.get(required) is None:
            raise click.UsageError(f"missing option --{required.replace('_', '-')}")
    try:
        settings = build_settings(options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    bundle = load_bundle(Path(settings.bundle), warn_only=settings.warn_only, warn=_warn)
    with ExitStack() as stack:
        if settings.instance_id is None:
            instance_id, lock = claim_instance_id(settings.group_id)
            if lock is not None:
                stack.callback(lock.close)
            settings = settings.model_copy(update={"instance_id": instance_id})
        log = EventLog(static={"instance": settings.instance_id})
        observer = _observer(settings, bundle, stack)
        scorer = BatchScorer(
            bundle, id_field=settings.id_field, max_event_bytes=settings.max_event_bytes
        )
        worker = Worker(settings, scorer, KafkaConnector(settings, log), log, observer)
        signals.worker = worker
        # What start-up loaded (sklearn, pandas, the model) lives as long as the process:
        # frozen, the cyclic collector stops rescanning it every few thousand allocations,
        # which the per-event objects of each batch trigger.
        gc.freeze()
        worker.run()
    return 0


COMMANDS = [run]
