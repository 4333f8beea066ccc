"""Secrets in the command line, found before anything parses it.

A password can reach the command line in shapes no parser expects: ``--kafka-property
"sasl.password Hunter2"`` (a space for the ``=``), ``sasl.password= Hunter2`` (the value
became the next argument), a key with a typo. Whatever message then quotes the input (ours,
click's, librdkafka's), ``worker.logs.redact`` masks every value kept here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from worker.kafka.properties import (
    KAFKA_PROPERTY_ENV,
    is_secret,
    kafka_environment,
    valid_key,
)
from worker.logs import keep_secret

OPTION = "--kafka-property"


def keep_kafka_secrets(args: Sequence[str], environ: Mapping[str, str]) -> None:
    """Keep (``worker.logs.keep_secret``) every value of a secret-looking Kafka property,
    and every ``--kafka-property`` that is not plainly ``KEY=VALUE`` with a valid key,
    from the arguments and the ``SCORING_WORKER_KAFKA_*`` environment."""
    given = list(_given(args))
    # one property per line, as ``worker.cli.kafka_options.PropertyLines`` splits it
    env_lines = environ.get(KAFKA_PROPERTY_ENV, "").splitlines()
    given += [(line, None) for line in env_lines if line.strip()]
    for key, value in kafka_environment(environ).items():
        if is_secret(key):
            keep_secret(value)
    for text, following in given:
        key, sep, value = text.partition("=")
        if not sep or not valid_key(key.strip().lower()):
            keep_secret(text)  # key and value cannot be told apart: all of it
            for word in text.replace("=", " ").replace(":", " ").split()[1:]:
                keep_secret(word)
            continue
        if is_secret(key.strip().lower()):
            keep_secret(value)
            if not value.strip() and following is not None and not following.startswith("-"):
                keep_secret(following)  # `sasl.password= Hunter2`: the shell split it off


def _given(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """Each ``--kafka-property`` value with the argument after it (None at the end)."""
    found: list[tuple[str, str | None]] = []
    for i, arg in enumerate(args):
        if arg == OPTION and i + 1 < len(args):
            found.append((args[i + 1], args[i + 2] if i + 2 < len(args) else None))
        elif arg.startswith(OPTION + "="):
            found.append((arg[len(OPTION) + 1 :], args[i + 1] if i + 1 < len(args) else None))
    return found
