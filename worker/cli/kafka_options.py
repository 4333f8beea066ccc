"""The Kafka options, the same on every command that talks to the broker (`run`,
`replay`, `record`, `publish`, `topics create`), and the ``KafkaSettings`` they give:
one environment scan, one property check, one meaning of ``--broker-timeout``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from schemas.errors import BadInputError
from worker.cli.options import debug, option
from worker.kafka.connection import Connection
from worker.kafka.properties import KAFKA_ENV_PREFIX, parse_kafka_property
from worker.kafka.settings import ONE_SHOT_BROKER_TIMEOUT_S, KafkaSettings, settings_problem
from worker.logs import KafkaLog, redact

F = Callable[..., Any]
S = TypeVar("S", bound=KafkaSettings)
BROKER_TIMEOUT_HELP = "give up (exit 3) after the broker was unreachable SECONDS; 0: never"
KAFKA_KEYS = ("bootstrap_servers", "broker_timeout_s", "kafka_property")
"""The options below, as click names them."""


class PropertyLines(click.types.StringParamType):
    """``KEY=VALUE`` strings; from the environment (``SCORING_WORKER_KAFKA_PROPERTY``), one
    per line. Click splits a multiple option's variable on whitespace by default, which cut
    a password holding a space in two, silently (issue 28); no property value holds a
    newline, so lines split them safely. Blank lines are skipped."""

    def split_envvar_value(self, rv: str) -> list[str]:
        return [line for line in rv.splitlines() if line.strip()]


KAFKA_PROPERTY = option(
    "--kafka-property",
    multiple=True,
    type=PropertyLines(),
    metavar="KEY=VALUE",
    help="librdkafka property (repeatable; consumer./producer. prefix scopes it; in "
    f"{KAFKA_ENV_PREFIX}PROPERTY one per line); or one environment variable per property, "
    f"{KAFKA_ENV_PREFIX}<PROPERTY>",
)
"""``--kafka-property``, the same on every command that talks to Kafka."""


def all_of(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several click options as one decorator (applied in the order given)."""

    def apply(command: F) -> F:
        for decorate in reversed(decorators):
            command = decorate(command)
        return command

    return apply


def kafka_options(run_default_s: float | None = None) -> Callable[[F], F]:
    """``--bootstrap-servers``, ``--broker-timeout``, ``--kafka-property``. With
    ``run_default_s`` (`run`): defaults None, so ``WorkerSettings`` decides (its broker
    timeout default, shown in the help); else required servers and a 30 s timeout."""
    if run_default_s is not None:
        servers = option(
            "--bootstrap-servers", default=None, help="Kafka bootstrap servers [required]"
        )
        timeout = option(
            "--broker-timeout",
            "broker_timeout_s",
            type=click.FloatRange(0),
            default=None,
            help=f"{BROKER_TIMEOUT_HELP} [default: {run_default_s:g}]",
        )
    else:
        servers = option("--bootstrap-servers", required=True, help="Kafka bootstrap servers")
        timeout = option(
            "--broker-timeout",
            "broker_timeout_s",
            type=click.FloatRange(0),
            default=ONE_SHOT_BROKER_TIMEOUT_S,
            show_default=True,
            help=BROKER_TIMEOUT_HELP,
        )
    return all_of(servers, timeout, KAFKA_PROPERTY)


def properties_of(texts: tuple[str, ...] | None) -> dict[str, str]:
    """``--kafka-property`` values as a dict; BadInputError naming what is wrong (never
    quoting the text: it may hold a secret)."""
    found: dict[str, str] = {}
    for text in texts or ():
        try:
            key, value = parse_kafka_property(text)
        except ValueError as exc:
            raise BadInputError(str(exc)) from None
        found[key] = value
    return found


def settings_of(
    model: type[S], given: Mapping[str, Any], refusal: type[Exception] = BadInputError
) -> S:
    """``model`` (``KafkaSettings`` or `run`'s ``WorkerSettings``) from a command's options
    (``kafka_property`` as click gives it, the others by field name) over the
    ``SCORING_WORKER_*`` environment: the one way every command makes its settings.
    ``refusal`` (exit 2) names the first problem, never quoting a value."""
    fields = {k: v for k, v in given.items() if k != "kafka_property"}
    properties = properties_of(given.get("kafka_property"))
    if properties:
        fields["kafka"] = properties
    try:
        return model(**fields)
    except ValidationError as exc:
        raise refusal(settings_problem(exc)) from None


def kafka_settings(o: dict[str, Any], registry_keys: tuple[str, ...] = ()) -> KafkaSettings:
    """Take the Kafka options (and ``registry_keys``, the Schema Registry options) out of
    a one-shot command's options: its settings. BadInputError (exit 2) for a refused
    property or value."""
    return settings_of(KafkaSettings, {k: o.pop(k) for k in (*KAFKA_KEYS, *registry_keys)})


def connection(settings: KafkaSettings) -> Connection:
    """The one-shot commands' way to the broker ``settings`` name; librdkafka's own lines
    on stderr with ``--debug`` only."""
    return Connection(settings, KafkaLog(_librdkafka_line if debug() else None))


def _librdkafka_line(_key: str, level: str, message: str) -> None:
    print(f"scoring-worker: librdkafka {level}: {redact(message)}", file=sys.stderr)
