"""`replay`, `record` and `parity`: recorded streams and research/live parity.

See docs/replay.md for the recording format and the model comparison workflow.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import click
import orjson

from model_bundles.bundle import Bundle, load_bundle
from schemas.errors import BadInputError
from worker.cli.format_options import (
    PatientSchemas,
    decoder_of,
    format_options,
    output_format_option,
    pop_format,
    register_records,
)
from worker.cli.kafka_options import all_of, connection, kafka_options, kafka_settings
from worker.cli.options import (
    batch_options,
    bundle_option,
    option,
    trust_options,
    warn_only_option,
    writable,
)
from worker.core.counts import counted
from worker.core.formats import (
    KnownSchemas,
    SchemaSource,
    WireDecoder,
    WriterSchema,
    learn_all,
)
from worker.core.ranges import bounds, describe, in_window
from worker.core.record_avro import AvroRecords
from worker.core.recording import (
    RecordedMessage,
    encode_message,
    encode_schema,
    read_recording_items,
)
from worker.core.scoring import BatchScorer
from worker.core.wire import OutputFormat
from worker.kafka.admin import ensure_topic
from worker.kafka.connection import Connection
from worker.kafka.ranges import RangeReader
from worker.kafka.settings import REGISTRY_KEYS
from worker.kafka.writer import TopicWriter
from worker.replay.parity import ParityChecker, ParityResult, compare
from worker.replay.parity_report import to_json, to_text
from worker.replay.replay import (
    FileSink,
    ReplayObserver,
    Sink,
    TopicSink,
    replay,
)

F = Callable[..., Any]
_file = click.Path(dir_okay=False, path_type=Path)
_existing = click.Path(exists=True, dir_okay=False, path_type=Path)


# the range of `record` and `replay`
_range_options = all_of(
    option("--topic", required=True, help="topic to read"),
    option("--from-offset", type=click.IntRange(0), default=None, help="per partition"),
    option("--from-time", default=None, metavar="ISO", help="first event time (incl.)"),
    option("--to-time", default=None, metavar="ISO", help="end time (excl.)"),
)


@click.command("replay")
@bundle_option()
@kafka_options()
@_range_options
@option("--output", type=_file, default=None, help="write prediction records here (JSONL)")
@option("--output-topic", default=None, help="or produce them to this topic")
@option("--expected", type=_existing, default=None, help="compare with these predictions")
@batch_options()
@option("--metrics-host", default="127.0.0.1", show_default=True, help="metrics bind address")
@option("--metrics-port", type=click.IntRange(0, 65535), default=None, help="serve /metrics")
@format_options()
@output_format_option()
@option(
    "--schemas",
    "schemas_from",
    type=_existing,
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
        _note(f"range of {o['topic']}: {describe(ranges)}")
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
    _note(summary.line(o["topic"], target))
    if checker is None:
        return 0
    return _show(checker.finish(), as_json=False)


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


def recorded_schemas(recording: Path) -> dict[int, WriterSchema]:
    found: dict[int, WriterSchema] = {}
    with lines_of(recording) as lines:
        for item in read_recording_items(lines, str(recording)):
            if isinstance(item, WriterSchema):
                found[item.schema_id] = item
    return found


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
        with _written(path) as sink:
            yield sink
        return
    assert topic is not None
    ensure_topic(conn, topic, None)
    writer = TopicWriter(conn, topic)
    yield TopicSink(writer.send, avro, topic)
    writer.finish()


@contextmanager
def _written(path: Path) -> Iterator[FileSink]:
    sink = FileSink(path)
    try:
        yield sink
    except BaseException:
        sink.discard()
        raise
    sink.commit()


@click.command("record")
@kafka_options()
@_range_options
@option("--output", type=_file, required=True, help="recording to write (JSONL)")
@format_options()
def record(**o: Any) -> None:
    """Copy a topic (or a range of it) to a file: keys, values, headers, timestamps; with
    --value-format avro|json-schema, the writer schemas its values name as well."""
    settings = kafka_settings(o, REGISTRY_KEYS)
    value_format, registry = pop_format(o, settings=settings)
    decoder = decoder_of(value_format)
    if decoder is not None and registry is None:
        raise click.UsageError(f"--value-format {value_format.value} needs --schema-registry-url")
    timeout_s = settings.broker_timeout_s
    schemas = PatientSchemas(registry, timeout_s) if registry is not None else None
    writable(o["output"])
    span = bounds(o["from_offset"], o["from_time"], o["to_time"])
    conn = connection(settings)
    count = 0
    with RangeReader(conn, o["topic"]) as reader:
        ranges = reader.resolve(span)
        with _written(o["output"]) as sink:
            for batch in in_window(reader.read(ranges, 1000), span):
                if decoder is not None and schemas is not None:
                    sink.write_lines(_new_schemas(batch, decoder, schemas))
                sink.write_lines(encode_message(m) for m in batch)
                count += len(batch)
    recorded = counted(count, "message")
    _note(f"recorded {recorded} of {o['topic']} ({describe(ranges)}) -> {o['output']}")


def _new_schemas(
    batch: list[RecordedMessage], decoder: WireDecoder, schemas: SchemaSource
) -> list[bytes]:
    """Schema lines for the writer schemas the batch names that were not recorded yet."""
    before = set(decoder.schemas)
    learn_all(decoder, schemas, decoder.wanted(m.value for m in batch))
    return [encode_schema(decoder.schemas[i]) for i in sorted(set(decoder.schemas) - before)]


@click.command("parity")
@option("--expected", type=_existing, required=True, help="reference predictions (JSONL)")
@option("--actual", type=_existing, required=True, help="predictions to check (JSONL)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@option("--show", type=click.IntRange(0), default=10, show_default=True, help="mismatches listed")
def parity(expected: Path, actual: Path, as_json: bool, show: int) -> int:
    """Compare two prediction files by event id; exit 1 on any difference or missing event."""
    with lines_of(expected) as exp, lines_of(actual) as act:
        result = compare(exp, act, (str(expected), str(actual)), max_listed=show)
    return _show(result, as_json)


def _show(result: ParityResult, as_json: bool) -> int:
    if as_json:
        click.echo(orjson.dumps(to_json(result), option=orjson.OPT_INDENT_2).decode())
    else:
        for line in to_text(result):
            click.echo(line)
    return 0 if result.ok else 1


class lines_of:
    """Lines of a file; BadInputError (exit 2) when it cannot be read."""

    def __init__(self, path: Path) -> None:
        try:
            self._file: IO[bytes] = path.open("rb")
        except OSError as exc:
            raise BadInputError(f"cannot read {path}: {exc.strerror}") from None

    def __enter__(self) -> Iterator[bytes]:
        return iter(self._file)

    def __exit__(self, *_: object) -> None:
        self._file.close()


def _note(message: str) -> None:
    click.echo(message, err=True)


def _warn(message: str) -> None:
    print(f"scoring-worker: warning: {message}", file=sys.stderr)


def _rejected(message: str) -> None:
    """Rejected events are named like `score` names rejected lines."""
    print(f"scoring-worker: rejected: {message}", file=sys.stderr)
