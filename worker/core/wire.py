"""The names of the wire formats and their registry, importable without pandas: the
settings (read before ``worker.live.lean`` keeps pyarrow out of ``run``) and the registry
client use them; the decoding is ``worker.core.formats``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ValueFormat(StrEnum):
    """What the bytes of an event value are (``--value-format``)."""

    JSON = "json"
    AVRO = "avro"
    JSON_SCHEMA = "json-schema"

    @property
    def schema_type(self) -> str:
        """The registry's ``schemaType`` of this format's schemas."""
        return "AVRO" if self is ValueFormat.AVRO else "JSON"


REGISTRY_UNUSED = (
    "--schema-registry-url is for --value-format avro or json-schema, or --output-format avro"
)
"""The refusal of a registry nothing uses, for a command with ``--output-format``."""
REGISTRY_UNUSED_BY_INPUT = "--schema-registry-url is for --value-format avro or json-schema"
"""The same, for a command without ``--output-format`` (`record`, `publish`, `score`)."""


class OutputFormat(StrEnum):
    """What the prediction records written to a topic are (``--output-format``)."""

    JSON = "json"
    AVRO = "avro"
    """The Confluent wire format, schema registered under ``<topic>-value``
    (``worker.core.record_avro``)."""


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """A schema as the registry holds it under its id."""

    schema_id: int
    schema_type: str
    """``AVRO`` (the registry's default when it names none), ``JSON`` or ``PROTOBUF``."""
    text: str


class SchemaNotFound(Exception):
    """The registry answered: it has no schema with this id (the event's fault)."""


class RegistryUnavailable(Exception):
    """The registry did not answer (not the event's fault: retry, never dead-letter)."""


class SchemaSource(Protocol):
    """Where writer schemas come from (``worker.kafka.registry.RegistrySchemas``)."""

    def get(self, schema_id: int) -> WriterSchema:
        """The schema; SchemaNotFound when there is none, RegistryUnavailable when no answer."""
        ...
