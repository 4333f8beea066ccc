"""Shared CLI plumbing: options that also read ``SCORING_WORKER_<OPTION>`` from the environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from worker.kafka.properties import ENV_PREFIX

F = Callable[..., Any]


FILE = click.Path(dir_okay=False, path_type=Path)
"""A file option's type: a path to write (or read) that is not a directory."""
EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)
"""A file option's type: a file that exists."""


def env_name(option: str) -> str:
    """``--bootstrap-servers`` -> ``SCORING_WORKER_BOOTSTRAP_SERVERS``."""
    return ENV_PREFIX + option.lstrip("-").upper().replace("-", "_")


def option(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option whose value may also come from the environment (SPEC.md)."""
    long_name = next(d for d in decls if d.startswith("--")).split("/")[0]
    kwargs.setdefault("envvar", env_name(long_name))
    kwargs.setdefault("show_envvar", True)
    return click.option(*decls, **kwargs)


def bundle_option(required: bool = True) -> Callable[[F], F]:
    return option(
        "--bundle",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        required=required,
        help="bundle directory",
    )


def warn_only_option() -> Callable[[F], F]:
    return option(
        "--warn-only",
        is_flag=True,
        default=False,
        help="warn on version or golden-output mismatches instead of refusing the bundle",
    )


def batch_options() -> Callable[[F], F]:
    """``--batch-size`` and ``--id-field`` of the research commands (`score`, `replay`)."""

    def decorate(command: F) -> F:
        command = option(
            "--id-field", default=None, help="event id field (default: the bundle's id column)"
        )(command)
        return option(
            "--batch-size",
            type=click.IntRange(1),
            default=1000,
            show_default=True,
            help="events scored per batch (the same predictions at any size)",
        )(command)

    return decorate


def trust_options() -> Callable[[F], F]:
    """``--trust-package`` / ``--trust-code`` (SPEC "Trust"): repeatable, comma-separated,
    also ``SCORING_WORKER_TRUST_PACKAGES`` / ``SCORING_WORKER_TRUST_CODE``."""

    def decorate(command: F) -> F:
        command = option(
            "--trust-code",
            "trust_code",
            multiple=True,
            envvar=ENV_PREFIX + "TRUST_CODE",
            callback=_comma_separated,
            metavar="sha256:HEX",
            help="load the bundle's own code/ with this digest (see `bundle inspect`)",
        )(command)
        return option(
            "--trust-package",
            "trust_packages",
            multiple=True,
            envvar=ENV_PREFIX + "TRUST_PACKAGES",
            callback=_comma_separated,
            metavar="NAME",
            help="allow types of this third-party package (e.g. feature_engine)",
        )(command)

    return decorate


def _comma_separated(_ctx: click.Context, _param: click.Parameter, values: Any) -> tuple[str, ...]:
    return tuple(
        part.strip() for value in values or () for part in value.split(",") if part.strip()
    )


def debug() -> bool:
    """Whether ``--debug`` (or ``SCORING_WORKER_DEBUG``) was given: tracebacks, and
    librdkafka's own log lines, on stderr."""
    import os

    context = click.get_current_context(silent=True)
    if context is not None and context.find_root().params.get("debug"):
        return True
    return os.environ.get(env_name("debug"), "") not in ("", "0", "false")


def writable(path: Any) -> None:
    """BadInputError (exit 2) now, before any work, when ``path`` cannot be written."""
    import os

    from schemas.errors import BadInputError

    folder = path.parent if str(path.parent) else "."
    if not os.path.isdir(folder):
        raise BadInputError(f"cannot write {path}: no directory {folder}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise BadInputError(f"cannot write {path}: permission denied")
