"""SPEC.md's exit codes, and the one root of the exceptions that choose them.

Every failure the command line turns into an exit code is a ``ScoringWorkerError``
whose class carries its ``exit_code``; ``worker.cli.main`` maps an exception to its
code in one place. Here, at the bottom of the layers, so that ``model_bundles`` and
every ``worker`` package raise the same classes.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """SPEC.md "Command line": 0 ok; 1 a check failed; 2 bad usage or bad input file;
    3 runtime failure."""

    OK = 0
    CHECK_FAILED = 1
    BAD_INPUT = 2
    RUNTIME_FAILURE = 3


class ScoringWorkerError(Exception):
    """A failure the command line reports as one line and ``exit_code``."""

    exit_code: ClassVar[ExitCode] = ExitCode.RUNTIME_FAILURE


class BundleError(ScoringWorkerError):
    """A bundle failed a check: digest, format, trusted types, versions, golden outputs (exit 1)."""

    exit_code = ExitCode.CHECK_FAILED


class BadInputError(ScoringWorkerError):
    """A config, data file or option the user gave is wrong (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


class RuntimeFailure(ScoringWorkerError):
    """The worker cannot go on: broker unreachable past its deadline, fenced, not
    authorised (exit 3)."""

    exit_code = ExitCode.RUNTIME_FAILURE


class StartupAborted(BaseException):
    """A stop signal came while the worker was starting: stop cleanly (a ``stop`` line,
    exit 0). A BaseException, so that no ``except Exception`` on the way swallows it."""

    exit_code: ClassVar[ExitCode] = ExitCode.OK
