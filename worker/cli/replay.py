"""`replay`, `record`, `publish` and `parity`: recorded streams and research/live parity.

See docs/replay.md for the recording format and the model comparison workflow.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import click
import orjson

from model_bundles.bundle import Bundle, load_bundle
from model_bundles.errors import BadInputError
from worker.cli.format_options import (
    PatientSchemas,
    decoder_of,
    format_options,
    output_format_option,
    pop_format,
    register_records,
)
from worker.cli.kafka_options import all_of, connection, kafka_options
from worker.cli.options import (
    bundle_option,
    option,
    trust_options,
    warn_only_option,
    writable,
)
from worker.core.counts import counted
from worker.core.formats import (
    KnownSchemas,
    RegistryUnavailable,
    SchemaSource,
    ValueFormat,
    WireDecoder,
    WriterSchema,
    learn_all,
    schema_id_of,
)
from worker.core.ranges import bounds, describe, in_window
from worker.core.record_avro import AvroRecords
from worker.core.recording import (
    OutgoingMessage,
    PublishOptions,
    RecordedMessage,
    encode_message,
    encode_schema,
    read_publishable,
    read_recording_items,
)
from worker.core.scoring import BatchScorer
from worker.core.wire import OutputFormat
from worker.errors import RuntimeFailure
from worker.kafka.ranges import Connection, RangeReader, Refused, TopicWriter, ensure_topic
from worker.kafka.registry import RegistrySchemas, RegistrySettings
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
@kafka_options
@_range_options
@option("--output", type=_file, default=None, help="write prediction records here (JSONL)")
@option("--output-topic", default=None, help="or produce them to this topic")
@option("--expected", type=_existing, default=None, help="compare with these predictions")
@option(
    "--batch-size",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="events scored per batch (the same predictions at any size)",
)
@option("--id-field", default=None, help="event id field (default: the bundle's id column)")
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
    value_format, registry = pop_format(o, output_format)
    decoder = decoder_of(value_format)
    schemas = _schemas(decoder, registry, o.pop("schemas_from"), o["broker_timeout_s"])
    if (o["output"] is None) == (o["output_topic"] is None):
        raise click.UsageError("give --output FILE or --output-topic TOPIC (one of them)")
    if output_format is OutputFormat.AVRO and o["output_topic"] is None:
        raise click.UsageError(
            "--output-format avro is for --output-topic (a predictions file is JSON lines)"
        )
    if o["output"] is not None:
        writable(o["output"])
    span = bounds(o["from_offset"], o["from_time"], o["to_time"])
    conn = connection(o["bootstrap_servers"], o["kafka_property"], o["broker_timeout_s"])
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
            avro = register_records(registry, [o["output_topic"]], o["broker_timeout_s"])
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
    return KnownSchemas(_recorded_schemas(recording), patient)


def _recorded_schemas(recording: Path) -> dict[int, WriterSchema]:
    found: dict[int, WriterSchema] = {}
    with _open(recording) as lines:
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
    with _open(expected) as lines:
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
@kafka_options
@_range_options
@option("--output", type=_file, required=True, help="recording to write (JSONL)")
@format_options()
def record(**o: Any) -> None:
    """Copy a topic (or a range of it) to a file: keys, values, headers, timestamps; with
    --value-format avro|json-schema, the writer schemas its values name as well."""
    value_format, registry = pop_format(o)
    decoder = decoder_of(value_format)
    if decoder is not None and registry is None:
        raise click.UsageError(f"--value-format {value_format.value} needs --schema-registry-url")
    schemas = PatientSchemas(registry, o["broker_timeout_s"]) if registry is not None else None
    writable(o["output"])
    span = bounds(o["from_offset"], o["from_time"], o["to_time"])
    conn = connection(o["bootstrap_servers"], o["kafka_property"], o["broker_timeout_s"])
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


@click.command("publish")
@kafka_options
@option("--topic", required=True, help="topic to write")
@option("--input", "input_path", type=_existing, required=True, help="recording or events")
@option("--partitions", type=click.IntRange(1), default=None, help="create the topic with N")
@option("--keep-partitions", is_flag=True, help="recordings: each message to its partition")
@option("--key-field", default=None, help="plain events: the field to use as the key")
@option("--timestamp-field", default=None, help="plain events: epoch-ms field as timestamp")
@format_options()
def publish(**o: Any) -> None:
    """Produce a recording (or a plain events file) into a topic, keeping what it holds.
    With --value-format avro|json-schema, the recording's writer schemas are registered
    under <topic>-value first, and each value's schema id is the one they got there."""
    value_format, registry = pop_format(o)
    renumber = None
    if value_format is not ValueFormat.JSON:
        if registry is None:
            raise click.UsageError(
                f"--value-format {value_format.value} needs --schema-registry-url: "
                "the recording's writer schemas are registered there"
            )
        recorded = _recorded_schemas(o["input_path"])
        if not recorded:
            raise BadInputError(
                f"{o['input_path']} holds no writer schemas: record it with "
                f"--value-format {value_format.value}"
            )
        renumber = (registry, recorded)
    options = PublishOptions(o["keep_partitions"], o["key_field"], o["timestamp_field"])
    conn = connection(o["bootstrap_servers"], o["kafka_property"], o["broker_timeout_s"])
    path: Path = o["input_path"]
    highest = _check_file(path, options)  # a bad line fails before anything is sent
    partitions = ensure_topic(conn, o["topic"], o["partitions"])
    if highest >= partitions:
        raise BadInputError(
            f"{path} has messages for partition {highest}: topic {o['topic']} has {partitions}"
        )
    ids: dict[int, int] = {}
    if renumber is not None:
        ids = _register(*renumber, f"{o['topic']}-value", o["broker_timeout_s"])
        _note("schemas: " + ", ".join(f"id {a} -> {b}" for a, b in sorted(ids.items())))
    writer = TopicWriter(conn, o["topic"], transactional=True)  # all or nothing
    with _open(path) as lines:
        writer.send(_renumbered(read_publishable(lines, str(path), options), ids))
    try:
        sent = writer.finish()
    except Refused as exc:
        raise _refused(exc, path, o["topic"]) from None
    published = counted(sent, "message")
    _note(f"published {published} to {o['topic']} ({partitions} partitions, one transaction)")


def _refused(exc: Refused, path: Path, topic: str) -> Exception:
    """The refused message as the line of ``path`` it came from, what to change, and that
    nothing was published (the transaction was aborted): rerunning cannot duplicate."""
    line = _line_number(path, exc.index)
    problem, code = exc.problem, exc.problem.code
    if code == "MSG_SIZE_TOO_LARGE":
        fix = (
            f"the message is {exc.size} bytes: over the producer's message.max.bytes "
            "(--kafka-property producer.message.max.bytes=N; librdkafka's default 1000000) "
            f"or topic {topic}'s max.message.bytes (scoring-worker topics create --topic "
            f"{topic} --config max.message.bytes=N --alter), or leave the event out"
        )
    elif "AUTHORIZATION" in code:
        fix = f"{problem}; needs ACL ALLOW WRITE on topic {topic}"
    else:
        fix = str(problem)
    done = "nothing was published (one transaction, aborted): rerun once fixed"
    message = f"{path}:{line}: message refused ({code}): {fix}; {done}"
    if code == "MSG_SIZE_TOO_LARGE":
        return BadInputError(message)
    return RuntimeFailure(message)


def _line_number(path: Path, index: int) -> int:
    """The line of ``path`` holding message ``index`` (blank lines publish nothing)."""
    seen = -1
    with _open(path) as lines:
        for number, raw in enumerate(lines, start=1):
            seen += bool(raw.strip())
            if seen == index:
                return number
    return 0


def _register(
    registry: RegistrySettings, schemas: dict[int, WriterSchema], subject: str, timeout_s: float
) -> dict[int, int]:
    """Recorded id -> the id the registry gives the same schema under ``subject``."""
    client = RegistrySchemas(registry)
    ids: dict[int, int] = {}
    deadline = time.monotonic() + timeout_s
    for old in sorted(schemas):
        while True:
            try:
                ids[old] = client.register(subject, schemas[old])
                break
            except RegistryUnavailable as exc:
                if time.monotonic() > deadline:
                    raise RuntimeFailure(f"{exc} (for {timeout_s:g}s)") from None
                time.sleep(0.5)
    return ids


def _renumbered(
    messages: Iterator[OutgoingMessage], ids: dict[int, int]
) -> Iterator[OutgoingMessage]:
    """Each value with its writer schema's id in the target registry (payload unchanged)."""
    for message in messages:
        value = message.value
        old = schema_id_of(value) if value is not None else None
        if value is not None and old is not None and ids.get(old, old) != old:
            value = b"\x00" + ids[old].to_bytes(4, "big") + value[5:]
            message = replace(message, value=value)
        yield message


def _check_file(path: Path, options: PublishOptions) -> int:
    """Read the whole file once; the highest partition it names (-1: none)."""
    highest = -1
    with _open(path) as lines:
        for message in read_publishable(lines, str(path), options):
            highest = max(highest, _partition(message))
    return highest


def _partition(message: OutgoingMessage) -> int:
    return -1 if message.partition is None else message.partition


@click.command("parity")
@option("--expected", type=_existing, required=True, help="reference predictions (JSONL)")
@option("--actual", type=_existing, required=True, help="predictions to check (JSONL)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@option("--show", type=click.IntRange(0), default=10, show_default=True, help="mismatches listed")
def parity(expected: Path, actual: Path, as_json: bool, show: int) -> int:
    """Compare two prediction files by event id; exit 1 on any difference or missing event."""
    with _open(expected) as exp, _open(actual) as act:
        result = compare(exp, act, (str(expected), str(actual)), max_listed=show)
    return _show(result, as_json)


def _show(result: ParityResult, as_json: bool) -> int:
    if as_json:
        click.echo(orjson.dumps(to_json(result), option=orjson.OPT_INDENT_2).decode())
    else:
        for line in to_text(result):
            click.echo(line)
    return 0 if result.ok else 1


class _open:
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


COMMANDS = [replay_command, record, publish, parity]
