"""Shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from worker.logs import forget_secrets

# The machines that run the suite are shared and run tests in parallel (pytest-xdist):
# how fast an example is drawn or run says nothing about the code under test. The
# property tests keep every other health check and their example counts.
settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-machine")


@pytest.fixture(autouse=True)
def _no_secrets_from_earlier_tests() -> Iterator[None]:
    """Tests call ``run_cli`` many times in one process: the secrets one command kept
    (a test's ``--schema-registry-key key``) must not mask another test's lines."""
    forget_secrets()
    yield
    forget_secrets()
