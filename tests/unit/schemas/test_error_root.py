"""One error root: each class carries SPEC.md's exit code, and the CLI maps by it."""

from __future__ import annotations

import pytest

from schemas.errors import (
    BadInputError,
    BundleError,
    ExitCode,
    RuntimeFailure,
    ScoringWorkerError,
    StartupAborted,
)
from worker.cli.main import exit_of
from worker.core.model_errors import ModelFailure
from worker.core.recording import RecordingError


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BundleError("digest differs"), ExitCode.CHECK_FAILED),
        (BadInputError("no such file"), ExitCode.BAD_INPUT),
        (RecordingError("line 3: not a recording"), ExitCode.BAD_INPUT),
        (RuntimeFailure("broker unreachable"), ExitCode.RUNTIME_FAILURE),
        (ModelFailure("the model raised"), ExitCode.RUNTIME_FAILURE),
    ],
)
def test_each_class_carries_its_exit_code(error: ScoringWorkerError, code: ExitCode) -> None:
    assert type(error).exit_code == code
    assert exit_of(error) == (code, str(error))


def test_anything_else_is_a_runtime_failure_named_by_its_type() -> None:
    assert exit_of(ValueError("boom")) == (ExitCode.RUNTIME_FAILURE, "ValueError: boom")


def test_a_stop_during_start_up_is_a_clean_exit() -> None:
    assert StartupAborted.exit_code == ExitCode.OK
    assert not issubclass(StartupAborted, Exception)  # no `except Exception` swallows it
