"""`replay`, `record`, `publish` and `parity`: recorded streams and research/live parity.

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
from model_bundles.errors import BadInputError
from worker.cli.kafka_options import all_of, connection, kafka_options
from worker.cli.options import (
    bundle_option,
    option,
    trust_options,
    warn_only_option,
    writable,
)
from worker.core.counts import counted
from worker.core.ranges import bounds, describe, in_window
from worker.core.recording import OutgoingMessage, PublishOptions, encode_message, read_publishable
from worker.core.scoring import BatchScorer
from worker.errors import RuntimeFailure
from worker.kafka.ranges import Connection, RangeReader, Refused, TopicWriter, ensure_topic
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
@option("--batch-size", type=click.IntRange(1), default=1000, show_default=True)
@option("--id-field", default=None, help="event id field (default: the bundle's id column)")
@option("--metrics-host", default="127.0.0.1", show_default=True, help="metrics bind address")
@option("--metrics-port", type=click.IntRange(0, 65535), default=None, help="serve /metrics")
@warn_only_option()
@trust_options()
def replay_command(**o: Any) -> int:
    """Score a bounded range of a topic, without joining any consumer group."""
    if (o["output"] is None) == (o["output_topic"] is None):
        raise click.UsageError("give --output FILE or --output-topic TOPIC (one of them)")
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
    scorer = BatchScorer(bundle, id_field=o["id_field"])
    with ExitStack() as stack:
        observer = _observer(bundle, o["metrics_host"], o["metrics_port"], stack)
        reader = stack.enter_context(RangeReader(conn, o["topic"]))
        ranges = reader.resolve(span)
        _note(f"range of {o['topic']}: {describe(ranges)}")
        with _output(conn, o["output"], o["output_topic"]) as sink:
            batches = in_window(reader.read(ranges, o["batch_size"]), span)
            summary = replay(
                batches, scorer, sink, observer=observer, checker=checker, report=_rejected
            )
    _note(summary.line(o["topic"], target))
    if checker is None:
        return 0
    return _show(checker.finish(), as_json=False)


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
def _output(conn: Connection, path: Path | None, topic: str | None) -> Iterator[Sink]:
    """Replay's output: a file (complete or absent) or a topic (flushed at the end)."""
    if path is not None:
        with _written(path) as sink:
            yield sink
        return
    assert topic is not None
    ensure_topic(conn, topic, None)
    writer = TopicWriter(conn, topic)
    yield TopicSink(writer.send)
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
def record(**o: Any) -> None:
    """Copy a topic (or a range of it) to a file: keys, values, headers, timestamps."""
    writable(o["output"])
    span = bounds(o["from_offset"], o["from_time"], o["to_time"])
    conn = connection(o["bootstrap_servers"], o["kafka_property"], o["broker_timeout_s"])
    count = 0
    with RangeReader(conn, o["topic"]) as reader:
        ranges = reader.resolve(span)
        with _written(o["output"]) as sink:
            for batch in in_window(reader.read(ranges, 1000), span):
                sink.write_lines(encode_message(m) for m in batch)
                count += len(batch)
    recorded = counted(count, "message")
    _note(f"recorded {recorded} of {o['topic']} ({describe(ranges)}) -> {o['output']}")


@click.command("publish")
@kafka_options
@option("--topic", required=True, help="topic to write")
@option("--input", "input_path", type=_existing, required=True, help="recording or events")
@option("--partitions", type=click.IntRange(1), default=None, help="create the topic with N")
@option("--keep-partitions", is_flag=True, help="recordings: each message to its partition")
@option("--key-field", default=None, help="plain events: the field to use as the key")
@option("--timestamp-field", default=None, help="plain events: epoch-ms field as timestamp")
def publish(**o: Any) -> None:
    """Produce a recording (or a plain events file) into a topic, keeping what it holds."""
    options = PublishOptions(o["keep_partitions"], o["key_field"], o["timestamp_field"])
    conn = connection(o["bootstrap_servers"], o["kafka_property"], o["broker_timeout_s"])
    path: Path = o["input_path"]
    highest = _check_file(path, options)  # a bad line fails before anything is sent
    partitions = ensure_topic(conn, o["topic"], o["partitions"])
    if highest >= partitions:
        raise BadInputError(
            f"{path} has messages for partition {highest}: topic {o['topic']} has {partitions}"
        )
    writer = TopicWriter(conn, o["topic"], transactional=True)  # all or nothing
    with _open(path) as lines:
        writer.send(read_publishable(lines, str(path), options))
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
