"""The `scoring-worker` command: one line on stderr per error, SPEC.md's exit codes."""

from __future__ import annotations

# isort: off
import os
import sys
from pathlib import Path

from worker.cli import early

if __name__ == "__main__" or Path(sys.argv[0]).name == "scoring-worker":
    early.install()  # before the slow imports below: a signal meanwhile is not lost
# isort: on

import traceback
from collections.abc import Sequence

import click

from model_bundles.errors import BadInputError, BundleError
from worker.cli.bundle import bundle, score
from worker.cli.options import env_name
from worker.errors import ExitCode, RuntimeFailure


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, envvar=env_name("debug"), help="tracebacks on errors")
def cli(debug: bool) -> None:
    """Score Kafka streams with a reproducible scikit-learn bundle."""


cli.add_command(bundle)
cli.add_command(score)


def _register_optional_commands() -> None:
    """Commands whose modules land separately; each module exposes ``COMMANDS``."""
    import importlib

    for module_name in ("worker.cli.live", "worker.cli.replay"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for command in module.COMMANDS:
            cli.add_command(command)


_register_optional_commands()


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get(env_name("debug"), "") not in ("", "0", "false")
    if next((a for a in args if not a.startswith("-")), None) != "run":
        early.release()  # only `run` handles SIGTERM itself
    sys.exit(run_cli(args, debug))


def run_cli(args: list[str], debug: bool = False) -> int:
    """Run the CLI and map every failure to one stderr line and an exit code."""
    try:
        result = cli.main(args=args, prog_name="scoring-worker", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        return _fail(ExitCode.BAD_INPUT, exc.format_message(), debug)
    except click.Abort:
        return _fail(ExitCode.RUNTIME_FAILURE, "aborted", debug)
    except BadInputError as exc:
        return _fail(ExitCode.BAD_INPUT, str(exc), debug)
    except BundleError as exc:
        return _fail(ExitCode.CHECK_FAILED, str(exc), debug)
    except RuntimeFailure as exc:
        return _fail(ExitCode.RUNTIME_FAILURE, str(exc), debug)
    except Exception as exc:  # the last resort keeps the one-line promise
        return _fail(ExitCode.RUNTIME_FAILURE, f"{type(exc).__name__}: {exc}", debug)
    return int(result) if isinstance(result, int) else int(ExitCode.OK)


def _fail(code: ExitCode, message: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    first_line = message.strip().splitlines()[0] if message.strip() else type(message).__name__
    print(f"scoring-worker: error: {first_line}", file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    main()
