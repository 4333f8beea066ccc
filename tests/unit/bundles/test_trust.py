"""SPEC "Trust": the catalogue, --trust-package, --trust-code, and the refusals between them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import skops.io as sio
from sklearn.utils import all_estimators

import model_bundles.versions as versions_module
from model_bundles.bundle import load_bundle
from model_bundles.digest import canonical_skops
from model_bundles.proof import declared_trust
from model_bundles.store import read_manifest, write_bundle
from model_bundles.trust.catalogue import admissible, trusted_types
from model_bundles.trust.policy import Trust
from schemas.errors import BadInputError, BundleError
from tests.support.trust_fixtures import (
    MARKER_ENV,
    build,
    feature_engine_pipeline,
    user_module,
    user_pipeline,
)
from tools.trust import probe
from worker.cli.main import run_cli

SCORING_WORKER = Path(sys.executable).parent / "scoring-worker"


@pytest.fixture(scope="module")
def frame() -> Any:
    return probe.table()


@pytest.fixture(scope="module")
def code_bundle(tmp_path_factory: pytest.TempPathFactory, frame: Any) -> tuple[Path, str, Path]:
    """(bundle, its code digest, the working copy of the user's module)."""
    source = tmp_path_factory.mktemp("user-code")
    module = user_module(source)
    out = tmp_path_factory.mktemp("bundles") / "user"
    manifest = build(user_pipeline(module, frame), frame, out, code=[module])
    assert manifest.trust.code is not None
    return out, manifest.trust.code.digest, Path(str(module.__file__))


@pytest.fixture(scope="module")
def fe_bundle(tmp_path_factory: pytest.TempPathFactory, frame: Any) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "feature-engine"
    build(feature_engine_pipeline(frame), frame, out)
    return out


@pytest.fixture()
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file the user's module writes when it is imported (from now on)."""
    path = tmp_path / "imported.marker"
    monkeypatch.setenv(MARKER_ENV, str(path))
    return path


def test_every_catalogue_estimator_is_on_the_reviewed_list() -> None:
    listed = trusted_types()
    missing = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for _, cls in all_estimators()
        if f"{cls.__module__}.{cls.__qualname__}" not in listed
    )
    assert not missing, f"regenerate: python -m tools.trust.generate ({missing})"
    assert all(admissible(name) for name in listed)


@pytest.mark.parametrize("name", ["os.system", "posix.system", "builtins.eval", "numpy.load"])
def test_code_running_types_can_never_join_the_list(name: str) -> None:
    assert not admissible(name) and name not in trusted_types()


@pytest.mark.parametrize("name", ["os", "builtins", "numpy", "sklearn", "feature_engine.x"])
def test_what_can_never_be_trusted_as_a_package_is_bad_usage(name: str) -> None:
    with pytest.raises(BadInputError, match="--trust-package"):
        Trust.of(packages=[name])


def test_code_needs_its_digest_and_says_so(code_bundle: tuple[Path, str, Path]) -> None:
    bundle, digest, _ = code_bundle
    with pytest.raises(BundleError, match=f"needs --trust-code {digest}"):
        load_bundle(bundle)


def test_trusted_code_is_imported_from_the_bundle_bytes(
    code_bundle: tuple[Path, str, Path], marker: Path
) -> None:
    bundle, digest, _ = code_bundle
    loaded = load_bundle(bundle, trust_code=[digest])
    assert loaded.selfcheck.ok and marker.exists()  # the positive control of the refusals
    clip = loaded.pipeline.steps[0][1]
    origin = clip.fit.__globals__["__spec__"].origin
    assert origin.startswith("<bundle code sha256:") and origin.endswith(".py")


def test_a_fresh_process_never_imports_the_working_copy(
    code_bundle: tuple[Path, str, Path], tmp_path: Path
) -> None:
    """The working directory holds an edited copy that scores differently: the worker,
    started there, still scores with the bundle's copy (its golden sample matches)."""
    bundle, digest, working_copy = code_bundle
    edited = working_copy.read_text().replace("SCALE = 1.0", "SCALE = 2.0")
    (tmp_path / working_copy.name).write_text(edited)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SCORING_WORKER_TRUST_CODE": digest}
    command = [str(SCORING_WORKER), "bundle", "verify", str(bundle)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "golden sample: 12 rows" in done.stdout and "identical" in done.stdout
    edited_copy = {**env, "SCORING_WORKER_TRUST_CODE": ""}
    refused = subprocess.run(command, cwd=tmp_path, env=edited_copy, capture_output=True)
    assert refused.returncode == 1


def test_a_changed_code_file_is_refused_naming_it_and_nothing_is_imported(
    code_bundle: tuple[Path, str, Path], marker: Path, tmp_path: Path
) -> None:
    bundle, digest, working_copy = code_bundle
    copy = Path(shutil.copytree(bundle, tmp_path / "b"))
    name = f"code/{working_copy.name}"
    with (copy / name).open("a") as handle:
        handle.write("\nSCALE = 3.0\n")
    with pytest.raises(BundleError, match=f"{name}: digest mismatch"):
        load_bundle(copy, trust_code=[digest])
    assert not marker.exists()


def test_another_code_digest_is_refused_and_nothing_is_imported(
    code_bundle: tuple[Path, str, Path], marker: Path
) -> None:
    bundle, digest, _ = code_bundle
    other = "sha256:" + "0" * 64
    with pytest.raises(BundleError, match=f"needs --trust-code {digest}"):
        load_bundle(bundle, trust_code=[other])
    assert not marker.exists()


def test_cli_refusal_is_one_line_with_the_option_and_env_var_trusts(
    code_bundle: tuple[Path, str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle, digest, _ = code_bundle
    assert run_cli(["bundle", "verify", str(bundle)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"needs --trust-code {digest}" in err[0]
    assert run_cli(["bundle", "inspect", str(bundle)]) == 0
    assert f"code: {digest}" in capsys.readouterr().out
    monkeypatch.setenv("SCORING_WORKER_TRUST_CODE", f"{digest}")
    assert run_cli(["bundle", "verify", str(bundle)]) == 0
    assert "golden sample" in capsys.readouterr().out


def test_a_third_party_package_needs_its_name(fe_bundle: Path) -> None:
    manifest = read_manifest(fe_bundle)
    assert manifest.trust.packages == {
        "feature_engine": versions_module.package_versions(["feature_engine"])["feature_engine"]
    }
    with pytest.raises(BundleError, match="needs --trust-package feature_engine"):
        load_bundle(fe_bundle)
    assert load_bundle(fe_bundle, trust_packages=["feature-engine"]).selfcheck.ok


def test_score_takes_the_trust_options_too(
    fe_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(load_bundle(fe_bundle, trust_packages=["feature_engine"])
                                    .reference.golden[0].event) + b"\n")  # fmt: skip
    args = ["score", "--bundle", str(fe_bundle), "--input", str(events)]
    assert run_cli([*args, "--output", str(tmp_path / "refused.jsonl")]) == 1
    assert "needs --trust-package feature_engine" in capsys.readouterr().err
    trusted = [*args, "--output", str(tmp_path / "p.jsonl"), "--trust-package", "feature_engine"]
    assert run_cli(trusted) == 0
    assert orjson.loads((tmp_path / "p.jsonl").read_bytes())["scores"]


def test_a_trusted_package_at_another_version_is_a_version_mismatch(
    fe_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        versions_module, "package_versions", lambda names: dict.fromkeys(names, "0.0.1")
    )
    with pytest.raises(BundleError, match=r"feature_engine \S+ in bundle, 0.0.1 here"):
        load_bundle(fe_bundle, trust_packages=["feature_engine"])


@pytest.mark.parametrize("smuggled", [os.system, eval])
def test_a_code_running_type_inside_a_trusted_package_is_refused_before_building(
    fe_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    frame: Any,
    smuggled: Any,
) -> None:
    """An attacker who can write the bundle re-signs it with a function inside a
    feature-engine object; the operator trusts feature_engine, not that function."""
    from feature_engine.imputation import MeanMedianImputer

    evil = MeanMedianImputer(variables=probe.NUMERIC).fit(frame[probe.NUMERIC])
    evil.imputer_dict_ = {"a": smuggled}
    manifest = read_manifest(fe_bundle).model_dump(mode="json")
    files = {n: (fe_bundle / n).read_bytes() for n in manifest["files"]}
    files["model.skops"] = canonical_skops(sio.dumps(evil))
    draft = {k: v for k, v in manifest.items() if k not in ("files", "digest")}
    write_bundle(tmp_path / "evil", draft, files)

    def never(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("an object was built")

    monkeypatch.setattr(sio, "load", never)
    name = f"{smuggled.__module__}.{smuggled.__name__}"
    with pytest.raises(BundleError, match=f"{name}; refused, nothing was built"):
        load_bundle(tmp_path / "evil", trust_packages=["feature_engine"])


def test_a_build_refuses_standard_library_functions_and_main_classes() -> None:
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(BadInputError, match="can never be trusted"):
        declared_trust(sio.dumps(FunctionTransformer(os.system)), {})


def test_a_module_outside_any_package_must_be_packed(tmp_path: Path, frame: Any) -> None:
    module = user_module(tmp_path)
    with pytest.raises(BadInputError, match=rf"code=\[{module.__name__}\]"):
        build(user_pipeline(module, frame), frame, tmp_path / "out")
    assert not (tmp_path / "out").exists()
