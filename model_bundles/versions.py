"""Exact library versions: recorded at build, compared at load."""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, version

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


def package_versions(import_names: Iterable[str]) -> dict[str, str | None]:
    """Installed version of the distribution providing each top-level import name, or None."""
    names = list(import_names)
    if not names:
        return {}
    providers = _providers()
    found: dict[str, str | None] = {}
    for name in names:
        distributions = providers.get(name) or []
        try:
            found[name] = version(distributions[0]) if distributions else None
        except PackageNotFoundError:
            found[name] = None
    return found


@cache
def _providers() -> Mapping[str, list[str]]:
    """Import name -> distributions; scanning every installed distribution takes a
    second or more, and the installed set does not change while a process runs."""
    return packages_distributions()


def package_mismatches(recorded: dict[str, str]) -> list[str]:
    """One line per trusted third-party package whose installed version differs."""
    runtime = package_versions(recorded)
    return [
        f"{name} {recorded[name]} in bundle, {runtime[name] or 'not installed'} here"
        for name in sorted(recorded)
        if runtime[name] != recorded[name]
    ]
