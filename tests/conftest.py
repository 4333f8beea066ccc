"""Shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version

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


def pytest_configure(config: pytest.Config) -> None:
    """Refuse ``--dist loadgroup`` with a pytest whose node ids pytest-xdist 3.8 cannot
    tag (pytest 9.2: pytest-dev/pytest-xdist#1386): the groups of
    tests/integration/conftest.py would silently not take, every module's fixtures built
    on every worker and the private broker started several times."""
    if config.getoption("dist", default="no") != "loadgroup":
        return
    xdist = tuple(int(p) for p in version("pytest-xdist").split(".")[:2])
    if pytest.version_tuple[:2] >= (9, 2) and xdist <= (3, 8):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} with pytest-xdist {version('pytest-xdist')} runs "
            "`--dist loadgroup` without its groups (pytest-dev/pytest-xdist#1386): "
            "run `make install` for the locked pytest"
        )
