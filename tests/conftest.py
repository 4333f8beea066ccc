"""Shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker.logs import forget_secrets


@pytest.fixture(autouse=True)
def _no_secrets_from_earlier_tests() -> Iterator[None]:
    """Tests call ``run_cli`` many times in one process: the secrets one command kept
    (a test's ``--schema-registry-key key``) must not mask another test's lines."""
    forget_secrets()
    yield
    forget_secrets()
