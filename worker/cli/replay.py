"""`replay`: a bounded range of a topic scored, compared with expected predictions.

See docs/replay.md for the recording format and the model comparison workflow.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import click

from model_bundles.bundle import Bundle, load_bundle
from worker.cli.format_options import (
    PatientSchemas,
    decoder_of,
    format_options,
    output_format_option,
    pop_format,
    register_records,
)
from worker.cli.kafka_options import connection, kafka_options, kafka_settings
from worker.cli.options import (
    EXISTING,
    FILE,
    batch_options,
    bundle_option,
    option,
    trust_options,
    warn_only_option,
    writable,
)
from worker.cli.parity import show_result
from worker.cli.record import range_options
from worker.cli.recordings import lines_of, note, recorded_schemas
from worker.core.complete_file import written
from worker.core.formats import (
    KnownSchemas,
    SchemaSource,
    WireDecoder,
    learn_all,
)
from worker.core.ranges import bounds, describe, in_window
from worker.core.record_avro import AvroRecords
from worker.core.recording import (
    RecordedMessage,
)
from worker.core.scoring import BatchScorer
from worker.core.wire import OutputFormat
from worker.kafka.admin import ensure_topic
from worker.kafka.connection import Connection
from worker.kafka.ranges import RangeReader
from worker.kafka.settings import REGISTRY_KEYS
from worker.kafka.writer import TopicWriter
from worker.replay.parity import ParityChecker
from worker.replay.replay import (
    FileSink,
    ReplayObserver,
    Sink,
    TopicSink,
    replay,
)

F = Callable[..., Any]


@click.command("replay")
@bundle_option()
@kafka_options()
@range_options
@option("--output", type=FILE, default=None, help="write prediction records here (JSONL)")
@option("--output-topic", default=None, help="or produce them to this topic")
@option("--expected", type=EXISTING, default=None, help="compare with these predictions")
@batch_options()
@option("--metrics-host", default="127.0.0.1", show_default=True, help="metrics bind address")
@option("--metrics-port", type=click.IntRange(0, 65535), default=None, help="serve /metrics")
@format_options()
@output_format_option()
@option(
    "--schemas",
    "schemas_from",
    type=EXISTING,
    default=None,
    help="writer schemas from this recording first (the registry only for the others)",
)
@warn_only_option()
@trust_options()
def replay_command(**o: Any) -> int:
    """Score a bounded range of a topic, without joining any consumer group."""
    output_format = OutputFormat(o.pop("output_format"))
    settings = kafka_settings(o, REGISTRY_KEYS)
    value_format, registry = pop_format(o, output_format, settings)
    decoder = decoder_of(value_format)
    schemas = _schemas(decoder, registry, o.pop("schemas_from"), settings.broker_timeout_s)
    if (o["output"] is None) == (o["output_topic"] is None):
        raise click.UsageError("give --output FILE or --output-topic TOPIC (one of them)")
    if output_format is OutputFormat.AVRO and o["output_topic"] is None:
        raise click.UsageError(
            "--output-format avro is for --output-topic (a predictions file is JSON lines)"
        )
    if o["output"] is not None:
        writable(o["output"])
    span = bounds(o["from_offset"], o["from_time"], o["to_time"])
    conn = connection(settings)
    bundle = load_bundle(
        o["bundle"],
        warn_only=o["warn_only"],
        trust_packages=o["trust_packages"],
        trust_code=o["trust_code"],
        warn=_warn,
    )
    target = str(o["output"] or o["output_topic"])
    checker = _checker(o["expected"], target)
    scorer = BatchScorer(bundle, id_field=o["id_field"], decoder=decoder)
    with ExitStack() as stack:
        observer = _observer(bundle, o["metrics_host"], o["metrics_port"], stack)
        reader = stack.enter_context(RangeReader(conn, o["topic"]))
        ranges = reader.resolve(span)
        note(f"range of {o['topic']}: {describe(ranges)}")
        avro = None
        if output_format is OutputFormat.AVRO and registry is not None:
            avro = register_records(registry, [o["output_topic"]], settings.broker_timeout_s)
        with _output(conn, o["output"], o["output_topic"], avro) as sink:
            batches = in_window(reader.read(ranges, o["batch_size"]), span)
            if decoder is not None and schemas is not None:
                batches = _learning(batches, decoder, schemas)
            summary = replay(
                batches, scorer, sink, observer=observer, checker=checker, report=_rejected
            )
    note(summary.line(o["topic"], target))
    if checker is None:
        return 0
    return show_result(checker.finish(), as_json=False)


def _schemas(
    decoder: WireDecoder | None, registry: Any, recording: Path | None, timeout_s: float
) -> SchemaSource | None:
    """Where replay's writer schemas come from: a recording's, then the registry."""
    if decoder is None:
        if recording is not None:
            raise click.UsageError("--schemas is for --value-format avro or json-schema")
        return None
    if registry is None and recording is None:
        raise click.UsageError(
            f"--value-format {decoder.format.value} needs --schema-registry-url or --schemas"
        )
    patient = PatientSchemas(registry, timeout_s) if registry is not None else None
    if recording is None:
        return patient
    return KnownSchemas(recorded_schemas(recording), patient)


def _learning(
    batches: Iterator[list[RecordedMessage]], decoder: WireDecoder, schemas: SchemaSource
) -> Iterator[list[RecordedMessage]]:
    """The batches, each after the decoder has learnt the writer schemas it names."""
    for batch in batches:
        learn_all(decoder, schemas, decoder.wanted(m.value for m in batch))
        yield batch


def _checker(expected: Path | None, actual_name: str) -> ParityChecker | None:
    if expected is None:
        return None
    checker = ParityChecker(str(expected), actual_name)
    with lines_of(expected) as lines:
        checker.add_expected(lines)
    return checker


def _observer(
    bundle: Bundle, host: str, port: int | None, stack: ExitStack
) -> ReplayObserver | None:
    if port is None:
        return None
    from prometheus_client import CollectorRegistry

    from worker.monitoring.http import serve
    from worker.monitoring.metrics import WorkerMetrics

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, bundle)
    stack.callback(serve(registry, host, port, lambda: True, metrics.is_ready).close)
    metrics.set_ready(True)
    return metrics


@contextmanager
def _output(
    conn: Connection, path: Path | None, topic: str | None, avro: AvroRecords | None
) -> Iterator[Sink]:
    """Replay's output: a file (complete or absent) or a topic (flushed at the end), its
    records in Avro with ``avro``."""
    if path is not None:
        with written(path, FileSink) as sink:
            yield sink
        return
    assert topic is not None
    ensure_topic(conn, topic, None)
    writer = TopicWriter(conn, topic)
    yield TopicSink(writer.send, avro, topic)
    writer.finish()


def _warn(message: str) -> None:
    print(f"scoring-worker: warning: {message}", file=sys.stderr)


def _rejected(message: str) -> None:
    """Rejected events are named like `score` names rejected lines."""
    print(f"scoring-worker: rejected: {message}", file=sys.stderr)
