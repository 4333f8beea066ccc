"""`publish`: a recording or an events file into a topic, in one transaction (all or
nothing), with a recording's writer schemas registered for Avro / JSON Schema values.

See docs/replay.md for the recording format.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import click

from schemas.errors import BadInputError, RuntimeFailure
from worker.cli.format_options import format_options, patiently, pop_format
from worker.cli.kafka_options import connection, kafka_options, kafka_settings
from worker.cli.options import EXISTING, option
from worker.cli.recordings import lines_of, note, recorded_schemas
from worker.core.counts import counted
from worker.core.formats import (
    ValueFormat,
    WriterSchema,
    schema_id_of,
)
from worker.core.recording import (
    OutgoingMessage,
    PublishOptions,
    read_publishable,
)
from worker.kafka.acl import needs_acl
from worker.kafka.admin import ensure_topic
from worker.kafka.registry import RegistrySchemas, RegistrySettings
from worker.kafka.settings import REGISTRY_KEYS, deadline_of
from worker.kafka.writer import Refused, TopicWriter


@click.command("publish")
@kafka_options()
@option("--topic", required=True, help="topic to write")
@option("--input", "input_path", type=EXISTING, required=True, help="recording or events")
@option("--partitions", type=click.IntRange(1), default=None, help="create the topic with N")
@option("--keep-partitions", is_flag=True, help="recordings: each message to its partition")
@option("--key-field", default=None, help="plain events: the field to use as the key")
@option("--timestamp-field", default=None, help="plain events: epoch-ms field as timestamp")
@format_options()
def publish(**o: Any) -> None:
    """Produce a recording (or a plain events file) into a topic, keeping what it holds.
    With --value-format avro|json-schema, the recording's writer schemas are registered
    under <topic>-value first, and each value's schema id is the one they got there."""
    settings = kafka_settings(o, REGISTRY_KEYS)
    value_format, registry = pop_format(o, settings=settings)
    renumber = None
    if value_format is not ValueFormat.JSON:
        if registry is None:
            raise click.UsageError(
                f"--value-format {value_format.value} needs --schema-registry-url: "
                "the recording's writer schemas are registered there"
            )
        recorded = recorded_schemas(o["input_path"])
        if not recorded:
            raise BadInputError(
                f"{o['input_path']} holds no writer schemas: record it with "
                f"--value-format {value_format.value}"
            )
        renumber = (registry, recorded)
    options = PublishOptions(o["keep_partitions"], o["key_field"], o["timestamp_field"])
    conn = connection(settings)
    path: Path = o["input_path"]
    highest = _check_file(path, options)  # a bad line fails before anything is sent
    partitions = ensure_topic(conn, o["topic"], o["partitions"])
    if highest >= partitions:
        raise BadInputError(
            f"{path} has messages for partition {highest}: topic {o['topic']} has {partitions}"
        )
    ids: dict[int, int] = {}
    if renumber is not None:
        ids = _register(*renumber, f"{o['topic']}-value", settings.broker_timeout_s)
        note("schemas: " + ", ".join(f"id {a} -> {b}" for a, b in sorted(ids.items())))
    writer = TopicWriter(conn, o["topic"], transactional=True)  # all or nothing
    with lines_of(path) as lines:
        writer.send(_renumbered(read_publishable(lines, str(path), options), ids))
    try:
        sent = writer.finish()
    except Refused as exc:
        raise _refused(exc, path, o["topic"]) from None
    published = counted(sent, "message")
    note(f"published {published} to {o['topic']} ({partitions} partitions, one transaction)")


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
        fix = f"{problem}; {needs_acl('WRITE', 'topic', [topic])}"
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
    with lines_of(path) as lines:
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
    deadline = deadline_of(timeout_s)
    return {
        old: patiently(partial(client.register, subject, schemas[old]), timeout_s, "", deadline)
        for old in sorted(schemas)
    }


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
    with lines_of(path) as lines:
        for message in read_publishable(lines, str(path), options):
            highest = max(highest, _partition(message))
    return highest


def _partition(message: OutgoingMessage) -> int:
    return -1 if message.partition is None else message.partition
