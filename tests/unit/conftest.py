"""Shared unit-test fixtures: real bundles built from the demo data (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from harness.workers import PENGUINS, PENGUINS_CONFIG, PENGUINS_CSV
from model_bundles.build import build_from_config
from model_bundles.bundle import Bundle, load_bundle
from worker.monitoring.drift import DriftSettings
from worker.monitoring.metrics import WorkerMetrics


@pytest.fixture(scope="session")
def penguins_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "penguins"
    build_from_config(PENGUINS_CONFIG, PENGUINS_CSV, out)
    return out


@pytest.fixture(scope="session")
def penguins_bundle(penguins_bundle_dir: Path) -> Bundle:
    return load_bundle(penguins_bundle_dir)


# --- metrics and drift (issue 5) ---

PENGUINS_MASS_CONFIG = PENGUINS / "config-mass.toml"


@pytest.fixture(scope="session")
def mass_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The regression bundle (no classes, no scores); its events need ``with_species``."""
    out = tmp_path_factory.mktemp("bundles") / "penguins-mass"
    build_from_config(PENGUINS_MASS_CONFIG, PENGUINS_CSV, out)
    return load_bundle(out)


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry per test: metrics never touch the global one."""
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry, penguins_bundle: Bundle) -> WorkerMetrics:
    return WorkerMetrics(registry, penguins_bundle, DriftSettings())
