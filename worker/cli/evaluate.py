"""`scoring-worker evaluate`: is the new model truly better? (SPEC.md "Champion and challenger").

See docs/evaluate.md for the method, the gate and the late-labels workflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from schemas.errors import BadInputError, ExitCode
from worker.cli.options import EXISTING, option
from worker.evaluate.inputs import ModelPredictions, join, read_labels, read_predictions
from worker.evaluate.metrics import metrics_for
from worker.evaluate.report import gate_failure, to_json, to_text
from worker.evaluate.stats import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Evaluation,
    evaluate,
    not_better,
)


@click.command("evaluate")
@option("--labels", type=EXISTING, required=True, help="labels (JSONL or a recording)")
@option(
    "--predictions",
    type=EXISTING,
    multiple=True,
    required=True,
    help="prediction file or recording (repeatable; the first model is the reference)",
)
@option("--metric", "metrics", multiple=True, help="only these metrics (repeatable)")
@option(
    "--require-better",
    default=None,
    metavar="METRIC",
    help="exit 1 unless every challenger is better than the first on METRIC (5 % level)",
)
@click.option("--json", "as_json", is_flag=True, help="print the evaluation as JSON")
@option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write a self-contained HTML report here",
)
@option(
    "--resamples",
    type=click.IntRange(100),
    default=DEFAULT_RESAMPLES,
    show_default=True,
    help="bootstrap resamples",
)
@option(
    "--seed", type=click.IntRange(0), default=DEFAULT_SEED, show_default=True, help="bootstrap seed"
)
def evaluate_command(**o: Any) -> int:
    """Join predictions with labels by event id; metrics, intervals, paired differences."""
    models: list[ModelPredictions] = []
    for path in o["predictions"]:
        models += read_predictions(_lines(path), str(path))
    gate = o["require_better"]
    if gate is not None and len(models) < 2:
        raise click.UsageError("--require-better needs two models or more to compare")
    metrics = list(o["metrics"])
    if gate is not None and metrics and gate not in metrics:
        metrics.append(gate)
    joined = join(read_labels(_lines(o["labels"]), str(o["labels"])), models)
    if gate is not None:
        metrics_for(joined.task, [gate])  # a name the task lacks is bad usage, before the work
    evaluation = evaluate(joined, metrics or None, o["resamples"], o["seed"])
    _show(evaluation, o["as_json"], o["report"])
    if gate is None:
        return int(ExitCode.OK)
    if not_better(evaluation, gate):
        click.echo(gate_failure(evaluation, gate), err=True)
        return int(ExitCode.CHECK_FAILED)
    click.echo(f"gate: every challenger is better on {gate}", err=True)
    return int(ExitCode.OK)


def _show(evaluation: Evaluation, as_json: bool, report: Path | None) -> None:
    page = None
    if report is not None:
        from worker.evaluate.html import render  # matplotlib only when asked

        page = render(evaluation)  # first: the plots' library warnings count in the text too
    if as_json:
        click.echo(orjson.dumps(to_json(evaluation), option=orjson.OPT_INDENT_2).decode())
    else:
        for line in to_text(evaluation):
            click.echo(line)
    if report is not None and page is not None:
        try:
            report.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise BadInputError(f"cannot write {report}: {exc.strerror}") from None
        click.echo(f"report: {report}", err=True)


def _lines(path: Path) -> list[bytes]:
    try:
        return path.read_bytes().splitlines()
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror}") from None
