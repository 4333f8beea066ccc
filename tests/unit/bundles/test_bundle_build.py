"""Building bundles: reproducible digests, every estimator family, the Python API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import model_bundles.build as build_module
import model_bundles.bundle as bundle_module
from harness.workers import PENGUINS, PENGUINS_CONFIG, PENGUINS_CSV
from model_bundles.build import build_bundle, build_from_config, build_from_frame
from model_bundles.bundle import load_bundle
from model_bundles.config import load_config
from model_bundles.estimators import make_preprocessor
from model_bundles.store import read_manifest

SCORING_WORKER = Path(sys.executable).parent / "scoring-worker"


def _build_in_subprocess(out: Path) -> str:
    subprocess.run(
        [str(SCORING_WORKER), "bundle", "build", "--config", str(PENGUINS_CONFIG),
         "--data", str(PENGUINS_CSV), "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return read_manifest(out).digest


def test_two_processes_build_the_same_digest_and_bytes(tmp_path: Path) -> None:
    first = _build_in_subprocess(tmp_path / "a")
    second = _build_in_subprocess(tmp_path / "b")
    assert first == second
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    for name in ("model.skops", "reference.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def _config_with(tmp_path: Path, old: str, new: str) -> Path:
    text = PENGUINS_CONFIG.read_text()
    assert old in text
    path = tmp_path / "config.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("seed = 7", "seed = 8"),
        ("split_seed = 42", "split_seed = 43"),
        ("C = 1.0", "C = 0.5"),
    ],
)
def test_digest_changes_with_seed_or_param(
    tmp_path: Path, penguins_bundle_dir: Path, old: str, new: str
) -> None:
    manifest = build_from_config(_config_with(tmp_path, old, new), PENGUINS_CSV, tmp_path / "b")
    assert manifest.digest != read_manifest(penguins_bundle_dir).digest


def test_digest_changes_with_one_data_row(tmp_path: Path, penguins_bundle_dir: Path) -> None:
    frame = pd.read_csv(PENGUINS_CSV)
    frame.loc[5, "bill_length_mm"] = frame.loc[5, "bill_length_mm"] + 0.1
    data = tmp_path / "penguins.csv"
    frame.to_csv(data, index=False)
    manifest = build_from_config(PENGUINS_CONFIG, data, tmp_path / "b")
    original = read_manifest(penguins_bundle_dir)
    assert manifest.data.sha256 != original.data.sha256
    assert manifest.digest != original.digest


def test_digest_changes_with_a_package_version(
    tmp_path: Path, penguins_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = build_module.runtime_versions()
    monkeypatch.setattr(build_module, "runtime_versions", lambda: {**real, "numpy": "0.0.1"})
    monkeypatch.setattr(bundle_module, "version_mismatches", lambda recorded: [])  # the proof
    manifest = build_from_config(PENGUINS_CONFIG, PENGUINS_CSV, tmp_path / "b")
    assert manifest.digest != read_manifest(penguins_bundle_dir).digest


def test_wall_clock_time_is_outside_the_digest(penguins_bundle_dir: Path) -> None:
    manifest = read_manifest(penguins_bundle_dir)
    assert "created_at" in manifest.build
    assert manifest.build["created_at"] not in manifest.model_dump_json(exclude={"build"})


def test_manifest_records_what_reproduction_needs(penguins_bundle_dir: Path) -> None:
    m = read_manifest(penguins_bundle_dir)
    assert m.task == "classification" and m.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert [f.name for f in m.features] == [
        "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex",
    ]  # fmt: skip
    assert m.estimator.params["C"] == 1.0 and m.estimator.params["random_state"] == 7
    assert m.seeds == {"split_seed": 42, "model_seed": 7}
    assert m.data.rows == 344 and m.data.train_rows + m.data.holdout_rows == 344
    assert {"python", "scikit-learn", "numpy", "scipy", "pandas", "scoring-worker"} <= set(
        m.versions
    )
    assert set(m.files) == {"model.skops", "reference.json"}
    assert 0.9 < m.metrics["accuracy"] <= 1.0


@pytest.mark.parametrize(
    "config_name",
    ["config-hgb.toml", "config-rf.toml", "config-mass.toml"],
)
def test_other_estimator_families_build_and_self_check(tmp_path: Path, config_name: str) -> None:
    manifest = build_from_config(PENGUINS / config_name, PENGUINS_CSV, tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    assert bundle.selfcheck.ok and bundle.selfcheck.golden_rows > 0
    assert manifest.task == ("regression" if "mass" in config_name else "classification")


@pytest.mark.parametrize("estimator", ["gradient_boosting", "linear_regression", "ridge"])
def test_config_estimators_for_regression(tmp_path: Path, estimator: str) -> None:
    config = load_config(PENGUINS / "config-mass.toml")
    model = config.model.model_copy(update={"estimator": estimator, "params": {}})
    config = config.model_copy(update={"model": model})
    frame = pd.read_csv(PENGUINS_CSV)
    build_from_frame(config, frame, tmp_path / "b")
    assert load_bundle(tmp_path / "b").selfcheck.ok


def test_python_api_builds_from_any_fitted_pipeline(tmp_path: Path) -> None:
    frame = pd.read_csv(PENGUINS_CSV).dropna(subset=["species"])
    numeric = ["bill_length_mm", "flipper_length_mm"]
    # No imputer for numeric features: a null there must be rejected, not scored.
    pre = make_preprocessor([], ["island"])
    pre.transformers.append(("raw", "passthrough", numeric))
    complete = frame.dropna(subset=numeric)
    pipeline = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=2000))])
    pipeline.fit(complete[["island", *numeric]].astype({"island": object}), complete["species"])
    manifest = build_bundle(
        pipeline, complete, tmp_path / "b", name="custom", version="0.1", target="species",
        numeric=numeric, categorical=["island"], seeds={"model_seed": 3},
    )  # fmt: skip
    nullable = {f.name: f.nullable for f in manifest.features}
    assert nullable == {"bill_length_mm": False, "flipper_length_mm": False, "island": True}
    bundle = load_bundle(tmp_path / "b")
    assert bundle.selfcheck.ok
    outputs = bundle.predict_frame(complete.head(10))
    expected = pipeline.predict_proba(complete[["island", *numeric]].head(10).astype(object))
    assert np.array_equal(outputs.scores, expected)
