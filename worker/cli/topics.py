"""`scoring-worker topics create`: the input, output and dead-letter topics (SPEC.md).

Brokers often have topic auto-creation off (the local one does), so the topics `run`
needs are made here: partitions, replication factor and topic configs
(``--config max.message.bytes=...``). A topic that exists already is left as it is
(exit 0) when it has the partitions and the configs asked for. Other partitions: exit 2.
Other configs: exit 1 naming each one and its current value, or, with ``--alter``, they
are set (an incremental alter: configs not named stay) and each change is listed; a
config the broker refuses is exit 2 (issue 28: they used to be ignored with exit 0).
"""

from __future__ import annotations

from typing import Any

import click

from model_bundles.errors import BadInputError
from worker.cli.kafka_options import connection, kafka_options
from worker.cli.options import option
from worker.errors import ExitCode, RuntimeFailure
from worker.kafka.admin import (
    TopicSpec,
    admin_client,
    alter_topic_configs,
    create_topic,
    partition_counts,
    topic_configs,
)
from worker.kafka.connection import Connection
from worker.kafka.types import KafkaFailure

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
@kafka_options
@option("--topic", "names", multiple=True, required=True, help="topic to create (repeatable)")
@option("--partitions", type=click.IntRange(1), default=1, show_default=True)
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
    conn = connection(o["bootstrap_servers"], o["kafka_property"], o["broker_timeout_s"])
    configs = dict(_config(text) for text in o["configs"])
    specs = [TopicSpec(n, o["partitions"], o["replication_factor"], configs) for n in o["names"]]
    admin = admin_client(conn.config("admin"))
    differing = 0
    try:
        existing = partition_counts(admin, conn.timeout_s)
        for spec in specs:
            differing += not _create(admin, conn, spec, existing.get(spec.name), o["alter"])
    except KafkaFailure as exc:
        if exc.broker_down or exc.code in ("_TIMED_OUT", "_TRANSPORT"):
            raise conn.unreachable("creating topics", exc) from None
        if exc.code in REFUSED_AS_ASKED:
            raise BadInputError(f"creating topics: {exc}") from None
        raise RuntimeFailure(f"creating topics: {exc}") from None
    return int(ExitCode.CHECK_FAILED) if differing else 0


def _create(
    admin: Any, conn: Connection, spec: TopicSpec, existing: int | None, alter: bool
) -> bool:
    """Create ``spec``, or check (``alter``: set) an existing topic's configs; False when
    an existing topic's configs differ from those asked and were left as they are."""
    if existing is None and create_topic(admin, spec, conn.timeout_s):
        click.echo(f"created {spec.name} ({_describe(spec)})", err=True)
        return True
    count = existing if existing is not None else partition_counts(admin, conn.timeout_s)[spec.name]
    if count != spec.partitions:
        raise BadInputError(
            f"topic {spec.name} exists with {count} partitions, not {spec.partitions}"
        )
    current = topic_configs(admin, spec.name, conn.timeout_s) if spec.configs else {}
    changes = {k: v for k, v in spec.configs.items() if current.get(k) != v}
    what = ", ".join(f"{k}={current.get(k, '(unset)')} (asked {v})" for k, v in changes.items())
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
    alter_topic_configs(admin, spec.name, changes, conn.timeout_s)
    done = ", ".join(f"{k} {current.get(k, '(unset)')} -> {v}" for k, v in changes.items())
    click.echo(f"altered {spec.name}: {done}", err=True)
    return True


def _describe(spec: TopicSpec) -> str:
    parts = [f"{spec.partitions} partitions"]
    if spec.replication_factor is not None:
        parts.append(f"replication factor {spec.replication_factor}")
    parts += [f"{k}={v}" for k, v in sorted(spec.configs.items())]
    return ", ".join(parts)


def _config(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise BadInputError(f"--config wants KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()
