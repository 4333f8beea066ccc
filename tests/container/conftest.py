"""The container tests: run by `make container-test` (scripts/container-test), which builds
the image and names it in SCORING_WORKER_IMAGE; skipped without it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# the integration helpers (broker, streams, verifier) are shared
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))


@pytest.fixture(scope="session")
def image() -> str:
    name = os.environ.get("SCORING_WORKER_IMAGE", "").strip()
    if not name:
        pytest.skip("SCORING_WORKER_IMAGE is not set: run `make container-test`")
    return name


@pytest.fixture(scope="session")
def bootstrap() -> str:
    named = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if not named:
        pytest.fail("KAFKA_BOOTSTRAP_SERVERS is not set (scripts/container-test sets it)")
    return named
