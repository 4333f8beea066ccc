"""`scoring-worker topics create`: the input, output and dead-letter topics (SPEC.md).

Brokers often have topic auto-creation off (the local one does), so the topics `run`
needs are made here: partitions, replication factor and topic configs
(``--config max.message.bytes=...``). A topic that exists already is left as it is
(exit 0) when it has the partitions and the configs asked for. Other partitions: exit 2.
Other configs: exit 1 naming each one and its current value, or, with ``--alter``, they
are set (an incremental alter: configs not named stay) and each change is listed; a
config the broker refuses is exit 2 (issue 28: they used to be ignored with exit 0), and
so is a config name the broker does not know (with the closest one it does, if any).
The value of a secret-looking config (``...password...``) is never printed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import click

from schemas.errors import BadInputError, ExitCode, RuntimeFailure
from worker.cli.kafka_options import connection, kafka_options, kafka_settings
from worker.cli.options import option
from worker.kafka.admin import (
    TopicSpec,
    admin_client,
    alter_topic_configs,
    create_topic,
    partition_counts,
    topic_configs,
)
from worker.kafka.connection import Connection
from worker.kafka.properties import is_secret
from worker.kafka.types import KafkaFailure
from worker.logs import MASK, keep_secret

REFUSED_AS_ASKED = frozenset(
    {
        "INVALID_CONFIG",
        "INVALID_PARTITIONS",
        "INVALID_REPLICATION_FACTOR",
        "INVALID_REPLICA_ASSIGNMENT",
        "INVALID_TOPIC_EXCEPTION",
        "POLICY_VIOLATION",
    }
)
"""Broker answers that mean the options asked for something it cannot make (exit 2)."""


@click.group()
def topics() -> None:
    """Create the topics the worker reads and writes."""


@topics.command("create")
@kafka_options()
@option("--topic", "names", multiple=True, required=True, help="topic to create (repeatable)")
@option(
    "--partitions",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="partitions of each topic (the most consumers of a group that share the work); "
    "an existing topic with another count is exit 2",
)
@option(
    "--replication-factor",
    type=click.IntRange(1),
    default=None,
    help="copies of each partition [default: the broker's default.replication.factor]",
)
@option(
    "--config",
    "configs",
    multiple=True,
    metavar="KEY=VALUE",
    help="topic config, e.g. max.message.bytes=2097152 (repeatable)",
)
@option(
    "--alter",
    is_flag=True,
    help="set the --config values on topics that exist already (default: exit 1 if differ)",
)
def create(**o: Any) -> int:
    """Create topics (each with the same partitions, replication factor and configs)."""
    conn = connection(kafka_settings(o))
    configs = dict(_config(text) for text in o["configs"])
    specs = [TopicSpec(n, o["partitions"], o["replication_factor"], configs) for n in o["names"]]
    admin = admin_client(conn.config(None))
    conn.reach(admin, "creating topics")
    differing = 0
    try:
        existing = partition_counts(admin, conn.request_s)
        for spec in specs:
            differing += not _create(admin, conn, spec, existing.get(spec.name), o["alter"])
    except KafkaFailure as exc:
        raise _failure(conn, "creating topics", exc, admin) from None
    return int(ExitCode.CHECK_FAILED) if differing else 0


def _failure(conn: Connection, what: str, exc: KafkaFailure, admin: Any) -> Exception:
    """The one-line error for ``exc`` met while ``what``: exit 2 for what the options
    asked and the broker cannot do, 3 for a broker that does not answer."""
    if exc.broker_down or exc.code in ("_TIMED_OUT", "_TRANSPORT"):
        return conn.unreachable(what, exc)
    unknown = _UNKNOWN_CONFIG in exc.reason
    if exc.code == "INVALID_CONFIG" and unknown:
        name = exc.reason.split(_UNKNOWN_CONFIG, 1)[1].strip()
        return BadInputError(_unknown_config(name, _known_configs(admin, conn.request_s)))
    if exc.code in REFUSED_AS_ASKED:
        return BadInputError(f"{what}: {exc}")
    return RuntimeFailure(f"{what}: {exc}")


_UNKNOWN_CONFIG = "Unknown topic config name:"
"""How the broker names a topic config it does not know (INVALID_CONFIG)."""


def _unknown_config(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean {close[0]}?" if close else "see the broker's topic configs"
    return f"--config {name}: not a topic config this broker knows ({hint})"


def _known_configs(admin: Any, timeout_s: float) -> list[str]:
    """Topic config names, from an existing topic's DescribeConfigs answer (none: [])."""
    try:
        names = sorted(partition_counts(admin, timeout_s))
        return list(topic_configs(admin, names[0], timeout_s)) if names else []
    except KafkaFailure:
        return []


def _shown(key: str, value: str) -> str:
    """``value`` as a message may print it: masked when ``key`` looks secret."""
    return MASK if is_secret(key.lower()) and value else value


def _create(
    admin: Any, conn: Connection, spec: TopicSpec, existing: int | None, alter: bool
) -> bool:
    """Create ``spec``, or check (``alter``: set) an existing topic's configs; False when
    an existing topic's configs differ from those asked and were left as they are."""
    if existing is None and create_topic(admin, spec, conn.request_s):
        click.echo(f"created {spec.name} ({_describe(spec)})", err=True)
        return True
    count = existing if existing is not None else partition_counts(admin, conn.request_s)[spec.name]
    if count != spec.partitions:
        raise BadInputError(
            f"topic {spec.name} exists with {count} partitions, not {spec.partitions}"
        )
    current = topic_configs(admin, spec.name, conn.request_s) if spec.configs else {}
    for name in spec.configs:
        if current and name not in current:  # DescribeConfigs lists every topic config
            raise BadInputError(_unknown_config(name, current))
    changes = {k: v for k, v in spec.configs.items() if current.get(k) != v}
    what = ", ".join(
        f"{k}={_shown(k, current.get(k, '(unset)'))} (asked {_shown(k, v)})"
        for k, v in changes.items()
    )
    if not changes:
        same = f" and {', '.join(sorted(spec.configs))} as asked" if spec.configs else ""
        click.echo(
            f"{spec.name} exists already ({count} partitions{same}): left as it is", err=True
        )
        return True
    if not alter:
        click.echo(
            f"scoring-worker: error: topic {spec.name} exists with {what}: left as it is; "
            "rerun with --alter to set them",
            err=True,
        )
        return False
    try:
        alter_topic_configs(admin, spec.name, changes, conn.request_s)
    except KafkaFailure as exc:
        raise _failure(conn, f"altering {spec.name}", exc, admin) from None
    done = ", ".join(
        f"{k} {_shown(k, current.get(k, '(unset)'))} -> {_shown(k, v)}" for k, v in changes.items()
    )
    click.echo(f"altered {spec.name}: {done}", err=True)
    return True


def _describe(spec: TopicSpec) -> str:
    parts = [f"{spec.partitions} partitions"]
    if spec.replication_factor is not None:
        parts.append(f"replication factor {spec.replication_factor}")
    parts += [f"{k}={_shown(k, v)}" for k, v in sorted(spec.configs.items())]
    return ", ".join(parts)


def _config(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` from ``--config``; the text is never quoted back (``ssl.key.password
    Hunter2``, a space for the ``=``, would show the password)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        keep_secret(text)
        raise BadInputError(
            f"--config wants KEY=VALUE; one given ({len(text)} characters) has "
            f"{'no key' if sep else 'no ='} (not shown: it may hold a secret)"
        )
    if is_secret(key.strip().lower()):
        keep_secret(value)  # whatever message quotes it (the broker's included) masks it
    return key.strip(), value.strip()
