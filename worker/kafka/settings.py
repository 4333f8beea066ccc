"""How a command reaches Kafka and the Schema Registry: one frozen settings model, read
from options and ``SCORING_WORKER_*``, the same for every command that connects (`run`'s
``WorkerSettings`` extends it; `replay`, `record`, `publish`, `topics create` use it as
it is, through ``worker.cli.kafka_options``).

Any librdkafka property passes through (``worker.kafka.properties``: the environment
scan, the refusal of a property the worker sets itself, the ``consumer.``/``producer.``
scoping). Values of secret-looking keys are ``SecretStr``: masked whenever the settings
are printed or logged, revealed only in the dicts handed to librdkafka.

``broker_timeout_s`` means the same for every command: how long a broker (or a Schema
Registry) that does not answer is waited for before exit 3; 0: never give up.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from worker.kafka.properties import (
    ENV_PREFIX,
    Scope,
    check_properties,
    is_secret,
    kafka_environment,
    scoped,
)
from worker.kafka.registry import RegistrySettings, masked_url

BROKER_TIMEOUT_ENV = ENV_PREFIX + "BROKER_TIMEOUT"
"""One environment name per setting: the option's (``--broker-timeout``), not the field's."""
ONE_SHOT_BROKER_TIMEOUT_S = 30.0
"""``--broker-timeout``'s default for the commands that run once (`run`'s is 300 s)."""
KafkaValue = str | SecretStr
NEVER = 0.0
"""``--broker-timeout 0``: wait for the broker for ever."""
REQUEST_TIMEOUT_S = 30.0
"""With ``--broker-timeout 0``, what one request to a broker that answered may take."""


class _KafkaEnvSource(PydanticBaseSettingsSource):
    """Collects ``SCORING_WORKER_KAFKA_<PROPERTY>`` variables into the ``kafka`` field."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = kafka_environment(os.environ)
        return {"kafka": found} if found else {}


class KafkaSettings(BaseSettings):
    """Where the broker and the Schema Registry are, the passthrough properties, and how
    long to wait for them; built once per command and never changed."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        use_attribute_docstrings=True,
        populate_by_name=True,
    )

    bootstrap_servers: str
    """Kafka bootstrap servers, ``host:port[,host:port...]``."""
    broker_timeout_s: float = Field(
        default=ONE_SHOT_BROKER_TIMEOUT_S, ge=0, validation_alias=BROKER_TIMEOUT_ENV
    )
    """Give up (exit 3) after the broker was unreachable this long; 0: never (option
    ``--broker-timeout``, environment ``SCORING_WORKER_BROKER_TIMEOUT``)."""
    kafka: dict[str, KafkaValue] = Field(default_factory=dict)
    """librdkafka passthrough properties; secret-looking values are SecretStr."""
    schema_registry_url: str | None = Field(default=None, repr=False)
    """Schema Registry URL(s), comma-separated; needed by ``avro`` and ``json-schema``
    (credentials in it are masked in ``masked()``, and it is left out of ``repr``)."""
    schema_registry_basic_auth: SecretStr | None = None
    """``USER:PASSWORD`` for the registry's HTTP basic auth (masked when printed)."""
    schema_registry_ca: Path | None = None
    """CA certificate (PEM) of the registry's TLS certificate."""
    schema_registry_certificate: Path | None = None
    """Client certificate (PEM) for mutual TLS with the registry."""
    schema_registry_key: Path | None = None
    """Its private key (PEM)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # options (init) over the environment; the two ``kafka`` dicts are merged, key by key
        kafka_env = _KafkaEnvSource(settings_cls)
        return init_settings, env_settings, kafka_env, dotenv_settings, file_secret_settings

    @field_validator("kafka", mode="before")
    @classmethod
    def _check_kafka(cls, value: Any) -> Any:
        return check_properties(value) if isinstance(value, Mapping) else value

    @field_validator("schema_registry_url")
    @classmethod
    def _check_registry_url(cls, value: str | None) -> str | None:
        if value is not None and not all(
            part.strip().startswith(("http://", "https://")) for part in value.split(",")
        ):
            raise ValueError("--schema-registry-url wants http:// or https:// URLs")
        return value

    # --- derived values -------------------------------------------------------------------

    @property
    def never_give_up(self) -> bool:
        """``--broker-timeout 0``: the broker is waited for as long as it takes."""
        return self.broker_timeout_s == NEVER

    @property
    def request_timeout_s(self) -> float:
        """What one request may take: the broker timeout, or ``REQUEST_TIMEOUT_S`` when
        that is 0 (a request handed 0 would not wait at all)."""
        return self.broker_timeout_s or REQUEST_TIMEOUT_S

    def kafka_properties(self, scope: Scope | None) -> dict[str, str]:
        """Passthrough properties for one client (secrets revealed: hand only to it):
        unscoped ones, then ``<scope>.`` ones; None (an admin client): unscoped only."""
        return scoped(self.kafka, scope)

    def admin_config(self) -> dict[str, Any]:
        """librdkafka properties of an admin client."""
        return {**self.kafka_properties(None), "bootstrap.servers": self.bootstrap_servers}

    def registry_settings(self) -> RegistrySettings | None:
        """The Schema Registry, None when no URL was given; ValueError when another
        ``--schema-registry-*`` option was given without one."""
        return registry_of(
            self.schema_registry_url,
            self.schema_registry_basic_auth,
            self.schema_registry_ca,
            self.schema_registry_certificate,
            self.schema_registry_key,
        )

    def masked(self) -> dict[str, Any]:
        """The settings as JSON-ready values, every secret shown as ``**********``."""
        dumped = self.model_dump(mode="json")
        dumped["kafka"] = {k: "**********" if is_secret(k) else v for k, v in self.kafka.items()}
        if self.schema_registry_url is not None:
            dumped["schema_registry_url"] = masked_url(self.schema_registry_url)
        return dumped


REGISTRY_KEYS = (
    "schema_registry_url",
    "schema_registry_basic_auth",
    "schema_registry_ca",
    "schema_registry_certificate",
    "schema_registry_key",
)
"""The Schema Registry options, as fields (and click names) in ``registry_of``'s order."""


def registry_of(
    url: str | None,
    basic_auth: SecretStr | str | None = None,
    ca: Path | None = None,
    certificate: Path | None = None,
    key: Path | None = None,
) -> RegistrySettings | None:
    """The Schema Registry the ``--schema-registry-*`` options name; None without a URL;
    ValueError when another of them was given without one."""
    if url is None:
        if any(v is not None for v in (basic_auth, ca, certificate, key)):
            raise ValueError("the --schema-registry-* options need --schema-registry-url")
        return None
    return RegistrySettings(
        url=url,
        basic_auth=SecretStr(basic_auth) if isinstance(basic_auth, str) else basic_auth,
        ca_location=ca,
        certificate_location=certificate,
        key_location=key,
    )


def deadline_of(timeout_s: float) -> float:
    """The ``time.monotonic()`` at which a wait of ``timeout_s`` gives up; 0 (``NEVER``):
    infinity, the meaning of ``--broker-timeout 0`` for every command."""
    return math.inf if timeout_s == NEVER else time.monotonic() + timeout_s


def settings_problem(exc: ValidationError) -> str:
    """The first problem of ``exc`` in one line, never quoting a value: a validator's own
    text (it names the option or property), else ``<field>: <pydantic's text>``."""
    first = exc.errors()[0]
    if first["type"] == "value_error" and "error" in first.get("ctx", {}):
        return str(first["ctx"]["error"])
    where = ".".join(str(p) for p in first["loc"]) or "settings"
    return f"{where}: {first['msg']}"
