"""The Schema Registry edge: writer schemas by id through confluent-kafka's
``SchemaRegistryClient`` (any Confluent-compatible registry: ``GET /schemas/ids/{id}``).

The worker asks once per schema id and keeps what it got (``worker.core.formats``); the
client answers repeated questions from its own cache. A 404 is the event's fault
(``SchemaNotFound``: its events are ``unknown_schema`` dead letters); no answer, a 5xx or
a refused login is not (``RegistryUnavailable``: the caller retries, the live worker turns
not ready and gives up after ``--broker-timeout``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from worker.core.wire import RegistryUnavailable, SchemaNotFound, WriterSchema

REQUEST_TIMEOUT_S = 5.0
_NOT_FOUND_CODES = frozenset({40403})
"""The registry's error code for "schema not found" (HTTP 404)."""


class RegistrySettings(BaseModel):
    """How to reach the Schema Registry; secrets masked when printed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(repr=False)
    """Base URL(s), comma-separated (``https://registry:8081``); may hold credentials."""
    basic_auth: SecretStr | None = None
    """``USER:PASSWORD`` for HTTP basic auth."""
    ca_location: Path | None = None
    """CA certificate (PEM) that signed the registry's TLS certificate."""
    certificate_location: Path | None = None
    """Client certificate (PEM) for mutual TLS."""
    key_location: Path | None = None
    """Its private key (PEM)."""

    def client_config(self) -> dict[str, Any]:
        """The ``SchemaRegistryClient`` configuration (secrets revealed: hand only to it)."""
        config: dict[str, Any] = {
            "url": self.url,
            "timeout": REQUEST_TIMEOUT_S,
            # the caller retries with its own backoff and deadline
            "max.retries": 0,
        }
        if self.basic_auth is not None:
            config["basic.auth.user.info"] = self.basic_auth.get_secret_value()
        for key, path in (
            ("ssl.ca.location", self.ca_location),
            ("ssl.certificate.location", self.certificate_location),
            ("ssl.key.location", self.key_location),
        ):
            if path is not None:
                config[key] = str(path)
        return config

    def masked(self) -> dict[str, Any]:
        """JSON-ready, with the password and any credentials in the URL masked."""
        dumped = self.model_dump(mode="json")
        dumped["url"] = masked_url(self.url)
        if self.basic_auth is not None:
            dumped["basic_auth"] = "**********"
        return dumped


def masked_url(url: str) -> str:
    """``https://user:secret@host`` -> ``https://user:**********@host`` (each of a list)."""
    out = []
    for part in url.split(","):
        split = urlsplit(part.strip())
        if split.password is not None:
            host = split.netloc.rpartition("@")[2]
            split = split._replace(netloc=f"{split.username}:**********@{host}")
        out.append(urlunsplit(split))
    return ",".join(out)


class RegistrySchemas:
    """``worker.core.formats.SchemaSource`` over a live registry."""

    def __init__(self, settings: RegistrySettings) -> None:
        # imported here: a fifth of a second (httpx, authlib) that JSON runs never pay
        from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        self._error = SchemaRegistryError
        self._schema = Schema
        self.settings = settings
        try:
            self._client = SchemaRegistryClient(settings.client_config())
        except (ValueError, TypeError, OSError) as exc:
            from schemas.errors import BadInputError

            raise BadInputError(f"schema registry settings: {exc}") from None

    def get(self, schema_id: int) -> WriterSchema:
        where = masked_url(self.settings.url)
        try:
            schema = self._client.get_schema(schema_id)
        except self._error as exc:
            if exc.http_status_code == 404 or exc.error_code in _NOT_FOUND_CODES:
                raise SchemaNotFound(f"the registry at {where} has none") from None
            raise self._unavailable(exc) from None
        except Exception as exc:  # httpx connection errors, timeouts, TLS failures
            raise self._unavailable(exc) from None
        if schema.references:
            raise SchemaNotFound("it uses schema references, which the worker does not follow")
        return WriterSchema(schema_id, schema.schema_type or "AVRO", schema.schema_str or "")

    def register(self, subject: str, schema: WriterSchema) -> int:
        """Register ``schema`` under ``subject``: the id this registry gives it.

        RegistryUnavailable when it does not answer; BadInputError (exit 2) when it refuses
        the schema (incompatible with the subject, not valid)."""
        where = masked_url(self.settings.url)
        what = f"schema id {schema.schema_id}" if schema.schema_id else "the schema"
        try:
            return int(
                self._client.register_schema(subject, self._schema(schema.text, schema.schema_type))
            )
        except self._error as exc:
            if exc.http_status_code is not None and 400 <= exc.http_status_code < 500:
                from schemas.errors import BadInputError

                raise BadInputError(
                    f"schema registry {where} refused {what} under {subject}: {exc.error_message}"
                ) from None
            raise self._unavailable(exc) from None
        except Exception as exc:  # httpx connection errors, timeouts, TLS failures
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: Exception) -> RegistryUnavailable:
        """A registry that did not answer, or answered with an error that is not the
        request's fault (5xx, a refused login): the caller retries."""
        where = masked_url(self.settings.url)
        if isinstance(exc, self._error):
            return RegistryUnavailable(
                f"schema registry {where}: HTTP {exc.http_status_code}: {exc.error_message}"
            )
        return RegistryUnavailable(f"schema registry {where}: {type(exc).__name__}: {exc}")
