"""``--value-format`` and the Schema Registry options, shared by `run`, `replay`, `record`,
`publish` and `score` (docs/kafka.md, "Avro and JSON Schema"). The commands that talk to
Kafka hold the registry in their ``KafkaSettings`` (``worker.cli.kafka_options``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import click

from schemas.errors import RuntimeFailure
from worker.cli.kafka_options import all_of
from worker.cli.options import EXISTING, option
from worker.core.formats import RegistryUnavailable, ValueFormat, WireDecoder, WriterSchema
from worker.core.record_avro import SCHEMA_TEXT, AvroRecords, subject_of
from worker.core.wire import REGISTRY_UNUSED, REGISTRY_UNUSED_BY_INPUT, OutputFormat
from worker.kafka.registry import RegistrySettings
from worker.kafka.settings import REGISTRY_KEYS, KafkaSettings, deadline_of, registry_of

F = Callable[..., Any]
T = TypeVar("T")
FORMATS = [f.value for f in ValueFormat]


def format_options(for_settings: bool = False) -> Callable[[F], F]:
    """The options; ``for_settings`` (`run`): default None, so ``WorkerSettings`` decides."""
    default = None if for_settings else ValueFormat.JSON.value
    shown = " [default: json]" if for_settings else ""
    return all_of(
        option(
            "--value-format",
            type=click.Choice(FORMATS),
            default=default,
            show_default=not for_settings,
            help="event values: JSON, or the Confluent wire format with Avro or JSON Schema"
            + shown,
        ),
        option("--schema-registry-url", default=None, help="Schema Registry URL(s)"),
        option(
            "--schema-registry-basic-auth",
            default=None,
            metavar="USER:PASSWORD",
            help="registry basic auth (prefer the environment variable)",
        ),
        option("--schema-registry-ca", type=EXISTING, default=None, help="registry CA (PEM)"),
        option(
            "--schema-registry-certificate",
            type=EXISTING,
            default=None,
            help="client certificate (PEM) for mutual TLS with the registry",
        ),
        option("--schema-registry-key", type=EXISTING, default=None, help="its key (PEM)"),
    )


def output_format_option(for_settings: bool = False) -> Callable[[F], F]:
    """``--output-format json|avro`` (`run`, `replay`); ``for_settings`` as above."""
    return option(
        "--output-format",
        type=click.Choice([f.value for f in OutputFormat]),
        default=None if for_settings else OutputFormat.JSON.value,
        show_default=not for_settings,
        help="prediction records: JSON, or Avro in the Confluent wire format (schema "
        "registered under <topic>-value)" + (" [default: json]" if for_settings else ""),
    )


def pop_format(
    o: dict[str, Any],
    output_format: OutputFormat | None = None,
    settings: KafkaSettings | None = None,
) -> tuple[ValueFormat, RegistrySettings | None]:
    """Take the format options out of a command's options: the format, the registry (None
    when no URL was given): ``settings``'s for a command that talks to Kafka, else from the
    options. ``output_format`` avro needs the registry as well; None: the command has no
    ``--output-format``, so a refusal does not name it."""
    value_format = ValueFormat(o.pop("value_format"))
    try:
        if settings is not None:
            registry = settings.registry_settings()
        else:
            registry = registry_of(*(o.pop(key) for key in REGISTRY_KEYS))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if registry is None:
        if output_format is OutputFormat.AVRO:
            raise click.UsageError("--output-format avro needs --schema-registry-url")
        return value_format, None
    if value_format is ValueFormat.JSON and output_format is None:
        raise click.UsageError(REGISTRY_UNUSED_BY_INPUT)
    if value_format is ValueFormat.JSON and output_format is OutputFormat.JSON:
        raise click.UsageError(REGISTRY_UNUSED)
    return value_format, registry


def decoder_of(value_format: ValueFormat) -> WireDecoder | None:
    return None if value_format is ValueFormat.JSON else WireDecoder(value_format)


class PatientSchemas:
    """A ``SchemaSource`` for the one-shot commands: a registry that does not answer is asked
    again with backoff, and after ``timeout_s`` (0: never) the command fails
    (RuntimeFailure, exit 3)."""

    def __init__(self, settings: RegistrySettings, timeout_s: float) -> None:
        from worker.kafka.registry import RegistrySchemas

        self.source = RegistrySchemas(settings)
        self.timeout_s = timeout_s

    def get(self, schema_id: int) -> WriterSchema:
        return patiently(lambda: self.source.get(schema_id), self.timeout_s)


def patiently(
    operation: Callable[[], T], timeout_s: float, what: str = "", deadline: float | None = None
) -> T:
    """``operation``'s value (a call to the Schema Registry), asked again with backoff (0.1 s
    doubling to 5 s) while the registry is unavailable; RuntimeFailure (exit 3) naming
    ``what`` once ``deadline`` (default: ``timeout_s`` from now; 0: never) is near."""
    deadline = deadline_of(timeout_s) if deadline is None else deadline
    wait_s = 0.1
    while True:
        try:
            return operation()
        except RegistryUnavailable as exc:
            if time.monotonic() + wait_s > deadline:
                raise RuntimeFailure(f"{exc} ({what}for {timeout_s:g}s)") from None
        time.sleep(wait_s)
        wait_s = min(wait_s * 2, 5.0)


def register_records(
    settings: RegistrySettings, topics: list[str], timeout_s: float
) -> AvroRecords:
    """Register the prediction record's Avro schema under each topic's subject, once at
    start; the encoder of the records written to them. A registry that does not answer
    is asked again with backoff; after ``timeout_s`` (0: never), RuntimeFailure (exit 3).
    One that refuses the schema (incompatible with the subject's): BadInputError (exit 2)."""
    from worker.kafka.registry import RegistrySchemas

    source = RegistrySchemas(settings)
    schema = WriterSchema(0, "AVRO", SCHEMA_TEXT)
    deadline = deadline_of(timeout_s)
    what = "registering the prediction record schema; "
    ids = {
        topic: patiently(
            partial(source.register, subject_of(topic), schema), timeout_s, what, deadline
        )
        for topic in topics
    }
    return AvroRecords(ids)
