"""The `scoring-worker` command: one line on stderr per error, SPEC.md's exit codes."""

from __future__ import annotations

import signal
import sys

if next((a for a in sys.argv[1:] if not a.startswith("-")), None) == "run":
    # First thing, before the imports below take their second or two on a loaded machine:
    # hold SIGTERM/SIGINT pending. `SignalStop.install` then takes them over (a pending
    # one gives the start-up stop line and exit 0) instead of the default action killing
    # the process (issue 20). Only the interpreter's own start is left uncovered.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})

import importlib
import os
import traceback
from collections.abc import Sequence

import click

from schemas.errors import ExitCode, ScoringWorkerError
from worker.cli.options import env_name
from worker.cli.secrets import keep_kafka_secrets
from worker.logs import redact

COMMANDS: dict[str, tuple[str, str]] = {
    "bundle": ("worker.cli.bundle:bundle", "Build, verify and inspect model bundles."),
    "score": ("worker.cli.bundle:score", "Research path: score a JSONL file of events, no Kafka."),
    "run": ("worker.cli.live:run", "Live path: consume, score and produce predictions."),
    "replay": ("worker.cli.replay:replay_command", "Score a bounded range of a topic."),
    "record": ("worker.cli.record:record", "Copy a topic (or a range of it) to a file."),
    "publish": ("worker.cli.publish:publish", "Produce a recording or events file into a topic."),
    "parity": ("worker.cli.parity:parity", "Compare two prediction files by event id."),
    "topics": ("worker.cli.topics:topics", "Create the topics the worker reads and writes."),
    "evaluate": ("worker.cli.evaluate:evaluate_command", "Compare models on labelled events."),
}
"""Command -> (where it lives, its one-line help): a command's module (and what it imports:
scikit-learn, pandas, librdkafka) is imported only when that command runs, so
``scoring-worker --help`` stays fast."""


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (``COMMANDS``)."""

    _listing = False
    """True while the group's own --help lists the commands: no import then."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        if ctx.resilient_parsing or self._listing:
            return click.Command(cmd_name, help=COMMANDS[cmd_name][1])
        if cmd_name == "run":  # before numpy's import starts its threads: see there
            from worker.live.lean import leave_out
            from worker.live.stopping import signals

            signals.install()
            leave_out()  # before pandas is imported
        module_name, _, attr = COMMANDS[cmd_name][0].partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: this package's version, then every library a bundle's recorded
    versions are compared with at load (``model_bundles.versions``), and librdkafka's."""
    if not value or ctx.resilient_parsing:
        return
    from model_bundles.versions import runtime_versions

    found = runtime_versions()
    click.echo(f"scoring-worker {found.pop('scoring-worker', 'not installed')}")
    click.echo("checked against a bundle's recorded versions:")
    for name, installed in found.items():
        click.echo(f"  {name} {installed}")
    click.echo("  (and the trusted packages a bundle names: `scoring-worker bundle inspect`)")
    click.echo("kafka client:")
    for name, installed in _kafka_versions().items():
        click.echo(f"  {name} {installed}")
    ctx.exit(0)


def _kafka_versions() -> dict[str, str]:
    """confluent-kafka and the librdkafka it runs on (the Kafka client, not checked
    against bundles: it cannot change a prediction)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = {"confluent-kafka": version("confluent-kafka")}
    except PackageNotFoundError:
        return {"confluent-kafka": "not installed"}
    from worker.kafka.versions import librdkafka_version

    found["librdkafka"] = librdkafka_version()
    return found


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, envvar=env_name("debug"), help="tracebacks on errors")
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="the version, and the library versions a bundle is checked against",
)
def cli(debug: bool) -> None:
    """Score Kafka streams with a reproducible scikit-learn bundle."""


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get(env_name("debug"), "") not in ("", "0", "false")
    if "--debug" in args:  # accepted anywhere: the group's option wants it first
        args = ["--debug", *(a for a in args if a != "--debug")]
    sys.exit(run_cli(args, debug))


def run_cli(args: list[str], debug: bool = False) -> int:
    """Run the CLI and map every failure to one stderr line and an exit code."""
    keep_kafka_secrets(args, os.environ)  # before any parsing can quote them
    try:
        result = cli.main(args=args, prog_name="scoring-worker", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        return _fail(ExitCode.BAD_INPUT, exc.format_message(), debug)
    except click.Abort:
        return _fail(ExitCode.RUNTIME_FAILURE, "aborted", debug)
    except KeyboardInterrupt:  # Ctrl-C, even while modules are still being imported
        return _fail(ExitCode.RUNTIME_FAILURE, "interrupted", debug)
    except Exception as exc:  # the last resort of the one-line promise too
        return _fail(*exit_of(exc), debug)
    return int(result) if isinstance(result, int) else int(ExitCode.OK)


def exit_of(exc: Exception) -> tuple[ExitCode, str]:
    """The exit code and the line for ``exc``: a ``ScoringWorkerError`` carries its code
    (``schemas.errors``); a client's refusal of a ``--kafka-property`` is bad input,
    whichever exception carries it; anything else is a runtime failure."""
    if isinstance(exc, ScoringWorkerError) and exc.exit_code != ExitCode.RUNTIME_FAILURE:
        return exc.exit_code, str(exc)
    from worker.kafka.properties import property_problem

    problem = property_problem(str(exc))
    if problem is not None:
        return ExitCode.BAD_INPUT, problem
    if isinstance(exc, ScoringWorkerError):
        return exc.exit_code, str(exc)
    return ExitCode.RUNTIME_FAILURE, f"{type(exc).__name__}: {exc}"


def _fail(code: ExitCode, message: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    first_line = message.strip().splitlines()[0] if message.strip() else type(message).__name__
    print(f"scoring-worker: error: {redact(first_line)}", file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    main()
