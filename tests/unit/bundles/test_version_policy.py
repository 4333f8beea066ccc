"""The version policy (issue 28, item 10): what must match a bundle exactly, what need not,
and a refusal line that says so and names ``--warn-only``."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

import model_bundles.versions as versions_module
from model_bundles.bundle import load_bundle
from model_bundles.store import write_bundle
from schemas.errors import BundleError
from worker.cli.main import run_cli


@pytest.fixture()
def bundle_copy(penguins_bundle_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(penguins_bundle_dir, tmp_path / "bundle"))


def _recorded_python(bundle: Path, python: str) -> None:
    """The bundle as if built on another Python (the manifest re-signed)."""
    manifest: dict[str, Any] = orjson.loads((bundle / "manifest.json").read_bytes())
    files = {name: (bundle / name).read_bytes() for name in manifest["files"]}
    draft = {k: v for k, v in manifest.items() if k not in ("files", "digest")}
    draft["versions"] = {**draft["versions"], "python": python}
    write_bundle(bundle, draft, files)


def _other_patch() -> str:
    major, minor, patch = platform.python_version_tuple()
    return f"{major}.{minor}.{int(patch) + 1 if patch != '2' else 7}"


def test_a_python_patch_level_difference_loads(
    bundle_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The image's 3.11.2 loads a bundle built on 3.11.7: the golden sample still decides."""
    other = _other_patch()
    _recorded_python(bundle_copy, other)
    bundle = load_bundle(bundle_copy)
    assert bundle.selfcheck.ok
    assert run_cli(["bundle", "verify", str(bundle_copy)]) == 0
    out = capsys.readouterr().out
    here = platform.python_version()
    assert f"versions: match (python {other} in bundle, {here} here (patch level: allowed))" in out
    assert "identical" in out


def test_a_python_minor_difference_is_refused(bundle_copy: Path) -> None:
    major, minor, _ = platform.python_version_tuple()
    _recorded_python(bundle_copy, f"{major}.{int(minor) + 1}.0")
    with pytest.raises(BundleError, match=rf"python {major}\.{int(minor) + 1}\.0 in bundle"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("package", ["numpy", "scikit-learn", "scipy", "pandas", "skops"])
def test_a_numeric_library_must_match_exactly_and_the_line_says_why_and_how(
    bundle_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    package: str,
) -> None:
    real = versions_module.runtime_versions()
    patched = real[package].rsplit(".", 1)[0] + ".999"  # a patch release of it
    monkeypatch.setattr(versions_module, "runtime_versions", lambda: {**real, package: patched})
    assert run_cli(["bundle", "verify", str(bundle_copy)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    assert f"{package} {real[package]} in bundle, {patched} here" in line
    assert "must match the bundle exactly" in line
    assert "Python's patch level need not" in line
    assert "--warn-only" in line
    assert load_bundle(bundle_copy, warn_only=True, warn=lambda _: None).selfcheck.ok is False


def test_a_golden_mismatch_line_names_warn_only_too(
    bundle_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import model_bundles.bundle as bundle_module

    monkeypatch.setattr(bundle_module, "golden_mismatches", lambda _b: ["golden row 0: differs"])
    with pytest.raises(BundleError) as refused:
        load_bundle(bundle_copy)
    assert "golden sample must re-score bit for bit" in str(refused.value)
    assert "--warn-only" in str(refused.value)
