"""Library versions: recorded at build, compared at load, by one policy.

What must match exactly, and why:

- scikit-learn, numpy, scipy, pandas: they compute the outputs. A release may change
  an algorithm, a default, a BLAS kernel or a summation order, and so the last bits of
  a probability; parity is checked bit for bit, so "close" is not the same model.
- skops: it reads the model file; the format and what it rebuilds are its version's.
- scoring-worker: it turns events into the model's input frame (types, missing
  values, category text) and records into bytes.
- every trusted third-party package (``--trust-package``): its code runs inside the
  pipeline, as the libraries above do.
- Python's major.minor (3.11): the extension modules of all of these are built for
  one minor version, and a trusted code module's source is compiled by it.

What need not match: Python's patch level (3.11.2 and 3.11.7). Patch releases are bug
and security fixes with the same ABI, so the same wheels are installed, and the
numeric work above happens in those wheels, not in the interpreter. The golden sample
is re-scored at every load anyway, so a patch level that changed an output would be
refused by that check. Measured: the penguins bundles built with 3.11.7 re-score their
golden samples bit for bit on Debian's 3.11.2 (docs/bundle.md "Version policy").
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, version

PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "skops", "scoring-worker")
"""Must match exactly (with Python's major.minor and every trusted package)."""
POLICY = (
    "scikit-learn, numpy, scipy, pandas, skops, scoring-worker, trusted packages and "
    "Python's major.minor must match the bundle exactly; Python's patch level need not "
    "(docs/bundle.md 'Version policy')"
)


def runtime_versions() -> dict[str, str]:
    """The versions that can change a model's outputs, as installed in this process."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _python_minor(text: str) -> str:
    return ".".join(text.split(".")[:2])


def _same(name: str, recorded: str, runtime: str | None) -> bool:
    if name == "python" and runtime is not None:
        return _python_minor(recorded) == _python_minor(runtime)  # the patch may differ
    return runtime == recorded


def version_mismatches(recorded: dict[str, str]) -> list[str]:
    """One line per version that differs from the bundle's where the policy wants it
    exact (every recorded package; Python's major.minor, not its patch level)."""
    runtime = runtime_versions()
    return [
        f"{name} {recorded[name]} in bundle, {runtime.get(name, 'not installed')} here"
        for name in sorted(recorded)
        if not _same(name, recorded[name], runtime.get(name))
    ]


def version_notes(recorded: dict[str, str]) -> list[str]:
    """Differences the policy allows (Python's patch level), for ``bundle verify``."""
    here = runtime_versions()["python"]
    built = recorded.get("python")
    if built is None or built == here or not _same("python", built, here):
        return []
    return [f"python {built} in bundle, {here} here (patch level: allowed)"]


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
