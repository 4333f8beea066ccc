"""`record`: a topic, or a range of it, copied to a file (keys, values, headers,
timestamps; with ``--value-format avro|json-schema``, the writer schemas its values name).
It imports no scoring stack: a recording is bytes, not events. See docs/replay.md."""

from __future__ import annotations

from typing import Any

import click

from worker.cli.format_options import PatientSchemas, decoder_of, format_options, pop_format
from worker.cli.kafka_options import all_of, connection, kafka_options, kafka_settings
from worker.cli.options import FILE, option, writable
from worker.cli.recordings import note
from worker.core.complete_file import CompleteFile, written
from worker.core.counts import counted
from worker.core.formats import SchemaSource, WireDecoder, learn_all
from worker.core.ranges import bounds, describe, in_window
from worker.core.recording import RecordedMessage, encode_message, encode_schema
from worker.kafka.ranges import RangeReader
from worker.kafka.settings import REGISTRY_KEYS

range_options = all_of(
    option("--topic", required=True, help="topic to read"),
    option("--from-offset", type=click.IntRange(0), default=None, help="per partition"),
    option("--from-time", default=None, metavar="ISO", help="first event time (incl.)"),
    option("--to-time", default=None, metavar="ISO", help="end time (excl.)"),
)
"""The range of `record` and `replay`."""


@click.command("record")
@kafka_options()
@range_options
@option("--output", type=FILE, required=True, help="recording to write (JSONL)")
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
        with written(o["output"], CompleteFile) as sink:
            for batch in in_window(reader.read(ranges, 1000), span):
                if decoder is not None and schemas is not None:
                    sink.write_lines(_new_schemas(batch, decoder, schemas))
                sink.write_lines(encode_message(m) for m in batch)
                count += len(batch)
    recorded = counted(count, "message")
    note(f"recorded {recorded} of {o['topic']} ({describe(ranges)}) -> {o['output']}")


def _new_schemas(
    batch: list[RecordedMessage], decoder: WireDecoder, schemas: SchemaSource
) -> list[bytes]:
    """Schema lines for the writer schemas the batch names that were not recorded yet."""
    before = set(decoder.schemas)
    learn_all(decoder, schemas, decoder.wanted(m.value for m in batch))
    return [encode_schema(decoder.schemas[i]) for i in sorted(set(decoder.schemas) - before)]
