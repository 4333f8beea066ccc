"""`parity`: two prediction files compared by event id (docs/replay.md); exit 1 on any
difference or missing event. It imports no scoring stack."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from worker.cli.options import EXISTING, option
from worker.cli.recordings import lines_of
from worker.replay.parity import ParityResult, compare
from worker.replay.parity_report import to_json, to_text


@click.command("parity")
@option("--expected", type=EXISTING, required=True, help="reference predictions (JSONL)")
@option("--actual", type=EXISTING, required=True, help="predictions to check (JSONL)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@option("--show", type=click.IntRange(0), default=10, show_default=True, help="mismatches listed")
def parity(expected: Path, actual: Path, as_json: bool, show: int) -> int:
    """Compare two prediction files by event id; exit 1 on any difference or missing event."""
    with lines_of(expected) as exp, lines_of(actual) as act:
        result = compare(exp, act, (str(expected), str(actual)), max_listed=show)
    return show_result(result, as_json)


def show_result(result: ParityResult, as_json: bool) -> int:
    """Print the report (text, or JSON with ``as_json``); the exit code: 0 when it holds."""
    if as_json:
        click.echo(orjson.dumps(to_json(result), option=orjson.OPT_INDENT_2).decode())
    else:
        for line in to_text(result):
            click.echo(line)
    return 0 if result.ok else 1
