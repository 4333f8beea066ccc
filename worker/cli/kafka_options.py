"""The Kafka options every command that talks to the broker shares (but `run`, whose
options are settings: ``worker.cli.run_options``), and the connection they describe."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from schemas.errors import BadInputError
from worker.cli.options import debug, env_name, option
from worker.kafka.connection import Connection
from worker.live.settings import (
    CONTROLLED,
    KAFKA_ENV_PREFIX,
    is_secret,
    kafka_key_from_env,
    parse_kafka_property,
)
from worker.live.settings import unscoped as unscoped_key
from worker.logs import KafkaLog, keep_secret, redact

F = Callable[..., Any]
ONE_SHOT_BROKER_TIMEOUT_S = 30.0


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


# the Kafka options of replay, record, publish and topics create
kafka_options = all_of(
    option("--bootstrap-servers", required=True, help="Kafka bootstrap servers"),
    option(
        "--broker-timeout",
        "broker_timeout_s",
        type=click.FloatRange(0, min_open=True),
        default=ONE_SHOT_BROKER_TIMEOUT_S,
        show_default=True,
        help="give up (exit 3) when the broker does not answer for SECONDS",
    ),
    KAFKA_PROPERTY,
)


def connection(bootstrap: str, properties: tuple[str, ...], timeout_s: float) -> Connection:
    """Passthrough properties: SCORING_WORKER_KAFKA_<PROPERTY> variables, then the options."""
    found: dict[str, str] = {}
    for name, value in os.environ.items():
        upper = name.upper()
        if upper.startswith(KAFKA_ENV_PREFIX) and upper != env_name("kafka-property"):
            found[kafka_key_from_env(upper)] = value
    for text in properties:
        try:
            key, value = parse_kafka_property(text)
        except ValueError as exc:
            raise BadInputError(str(exc)) from None
        found[key.lower()] = value
    for key, value in found.items():
        if is_secret(key):
            keep_secret(value)
        if unscoped_key(key) in CONTROLLED:
            raise BadInputError(f"kafka property {key!r} is set by scoring-worker itself")
    return Connection(bootstrap, found, timeout_s, KafkaLog(_librdkafka_line if debug() else None))


def _librdkafka_line(_key: str, level: str, message: str) -> None:
    print(f"scoring-worker: librdkafka {level}: {redact(message)}", file=sys.stderr)
