"""Exit codes of SPEC.md, and the exceptions that choose them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1
    BAD_INPUT = 2
    RUNTIME_FAILURE = 3


class RuntimeFailure(Exception):
    """The worker cannot go on: broker unreachable past its deadline, fenced, not authorised."""
