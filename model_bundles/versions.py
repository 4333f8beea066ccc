"""Exact library versions: recorded at build, compared at load."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "skops", "scoring-worker")


def runtime_versions() -> dict[str, str]:
    """The versions that can change a model's outputs, as installed in this process."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def version_mismatches(recorded: dict[str, str]) -> list[str]:
    """One line per package whose runtime version differs from the bundle's."""
    runtime = runtime_versions()
    return [
        f"{name} {recorded[name]} in bundle, {runtime.get(name, 'not installed')} here"
        for name in sorted(recorded)
        if runtime.get(name) != recorded[name]
    ]
