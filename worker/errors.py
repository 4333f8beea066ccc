"""Exit codes of SPEC.md, and the exceptions that choose them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1
    BAD_INPUT = 2
    RUNTIME_FAILURE = 3


class StartupAborted(BaseException):
    """A stop signal came while the worker was starting: stop cleanly (a ``stop`` line,
    exit 0). A BaseException, so that no ``except Exception`` on the way swallows it."""


class RuntimeFailure(Exception):
    """The worker cannot go on: broker unreachable past its deadline, fenced, not authorised."""
