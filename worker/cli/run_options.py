"""The options of `scoring-worker run`, each with its default and environment name.

Options default to None (not given), so that ``WorkerSettings`` applies its own default
and the environment; the help shows the settings' defaults. Settings that only exist as
environment variables are listed in the help's epilog, generated from ``WorkerSettings``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from worker.cli.format_options import format_options, output_format_option
from worker.cli.kafka_options import kafka_options
from worker.cli.options import env_name, option
from worker.kafka.properties import ENV_PREFIX
from worker.live.settings import RUN_BROKER_TIMEOUT_S, WorkerSettings

F = Callable[..., Any]
_FIELDS = WorkerSettings.model_fields


def default_of(name: str) -> str:
    """A settings field's default as the help shows it ('unset' for None)."""
    value = _FIELDS[name].default
    return "unset" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _setting(decl: str, name: str, text: str, **kwargs: Any) -> Callable[[F], F]:
    """An option for settings field ``name`` (default None: the settings decide)."""
    help_text = f"{text} [default: {default_of(name)}]"
    return option(decl, name, default=None, help=help_text, **kwargs)


_positive = click.FloatRange(0, min_open=True)
_OPTIONS: list[Callable[[F], F]] = [
    kafka_options(run_default_s=RUN_BROKER_TIMEOUT_S),
    option("--input-topic", default=None, help="topic of input events [required]"),
    option("--output-topic", default=None, help="topic of prediction records [required]"),
    option("--dlq-topic", default=None, help="dead-letter topic for rejected events"),
    option(
        "--no-dlq",
        is_flag=True,
        default=False,
        help="run without a dead-letter topic: rejected events are only counted",
    ),
    _setting("--group-id", "group_id", "consumer group"),
    option(
        "--instance-id", default=None, help="unique replica name [default: <host>-<slot>-<token>]"
    ),
    _setting(
        "--delivery",
        "delivery",
        "exactly-once: one transaction per batch; at-least-once: commit after delivery",
        type=click.Choice(["exactly-once", "at-least-once"]),
    ),
    _setting("--max-events", "max_events", "stop after N events", type=click.IntRange(1)),
    _setting(
        "--idle-timeout", "idle_timeout_s", "stop after SECONDS without events", type=_positive
    ),
    _setting(
        "--model-timeout",
        "model_timeout_s",
        "a batch the model scores SECONDS: log its stack, exit 3 (not ready from half); 0: never",
        type=click.FloatRange(0),
    ),
    _setting("--max-batch-events", "max_batch_events", "batch size cap", type=click.IntRange(1)),
    _setting(
        "--max-batch-age-ms",
        "max_batch_age_ms",
        "after an idle wait, how long a batch waits for more events",
        type=click.IntRange(0),
    ),
    _setting("--metrics-host", "metrics_host", "metrics bind address"),
    _setting(
        "--metrics-port",
        "metrics_port",
        "serve /metrics, /healthz, /readyz on PORT",
        type=click.IntRange(0, 65535),
    ),
    _setting(
        "--metrics-web-config",
        "metrics_web_config",
        "exporter web config file: TLS cert/key, basic auth users (docs/deploy.md)",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
    ),
    _setting(
        "--drift-window-events",
        "drift_window_events",
        "drift window in events",
        type=click.IntRange(1),
    ),
    _setting("--drift-window-s", "drift_window_s", "drift window in seconds", type=_positive),
    _setting("--psi-warning", "psi_warning", "PSI warning threshold", type=_positive),
    _setting("--psi-critical", "psi_critical", "PSI critical threshold", type=_positive),
    option("--id-field", default=None, help="event id field [default: the bundle's id column]"),
    _setting(
        "--max-event-bytes",
        "max_event_bytes",
        "reject larger events as too_large",
        type=click.IntRange(1),
    ),
    format_options(for_settings=True),
    output_format_option(for_settings=True),
]


def run_options(command: F) -> F:
    """Every option of `run` (``--bundle`` and ``--warn-only`` excluded)."""
    for decorate in reversed(_OPTIONS):
        command = decorate(command)
    return command


def environment_only_epilog(command: click.Command) -> str:
    """Help text listing the settings no option sets, with their environment names."""
    given = {p.name for p in command.params}
    given |= {"kafka", "dlq_max_message_bytes"}  # --kafka-property; read from the broker
    lines = ["\b", "Settings only read from the environment:"]
    for name, info in _FIELDS.items():
        if name in given:
            continue
        text = " ".join((info.description or "").replace("``", "").split())
        lines.append(f"  {ENV_PREFIX}{name.upper()} [default: {default_of(name)}]")
        lines += textwrap.wrap(text, 76, initial_indent="      ", subsequent_indent="      ")
    lines.append(f"  {env_name('debug')}: tracebacks on errors, like --debug")
    return "\n".join(lines)
