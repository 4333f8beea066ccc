"""`run --challenger DIR ... --challenger-topic C`: the options and the start-up checks.

A challenger that fails to load stops start-up (SPEC.md), like the champion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from model_bundles.bundle import load_bundle
from worker.cli.options import option
from worker.core.scoring import BatchScorer
from worker.live.challengers import Challengers, challenger_name
from worker.live.settings import WorkerSettings
from worker.logs import EventLog

F = Callable[..., Any]


def challenger_options(command: F) -> F:
    """``--challenger`` (repeatable) and ``--challenger-topic``."""
    command = option("--challenger-topic", default=None, help="topic of the challengers' records")(
        command
    )
    return option(
        "--challenger",
        "challenger_dirs",
        multiple=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="challenger bundle directory (repeatable; needs --challenger-topic)",
    )(command)


def pop_challenger_options(options: dict[str, Any]) -> tuple[list[Path], str | None]:
    """Take the challenger options out of ``run``'s (they are not worker settings)."""
    dirs, topic = list(options.pop("challenger_dirs", ()) or ()), options.pop("challenger_topic")
    if bool(dirs) != (topic is not None):
        raise click.UsageError("--challenger and --challenger-topic go together")
    return dirs, topic


def load_challengers(
    dirs: list[Path],
    topic: str | None,
    settings: WorkerSettings,
    champion: BatchScorer,
    registry: Any,
    warn: Callable[[str], None],
    trust: Mapping[str, Sequence[str]] | None = None,
    log: EventLog | None = None,
) -> Challengers | None:
    """Load and check every challenger bundle; their metrics on ``registry`` when given.

    ``trust`` (``trust_packages``/``trust_code``) is the operator's, as for the champion;
    ``log`` gets the ``challenger_disabled`` line of a challenger whose circuit opens."""
    if not dirs or topic is None:
        return None
    scorers = [
        BatchScorer(
            load_bundle(d, warn_only=settings.warn_only, warn=warn, **(trust or {})),
            id_field=settings.id_field,
            max_event_bytes=settings.max_event_bytes,
            decoder=champion.decoder,  # its schemas are learnt before the champion scores
        )
        for d in dirs
    ]
    observer = None
    if registry is not None:
        from worker.monitoring.challenger_metrics import ChallengerMetrics
        from worker.monitoring.drift import DriftSettings

        drift = DriftSettings(
            window_events=settings.drift_window_events, window_s=settings.drift_window_s
        )
        names = [challenger_name(s) for s in scorers]
        observer = ChallengerMetrics(registry, champion.bundle, names, drift)
    instance = settings.instance_id or ""
    return Challengers(champion, scorers, topic, instance, observer, log=log)
