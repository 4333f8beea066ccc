"""A build proves its bundle; decision-function classifiers; catalogue names in the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import model_bundles.bundle as bundle_module
from harness.workers import PENGUINS_CONFIG, PENGUINS_CSV
from model_bundles.build import build_bundle, build_from_config
from model_bundles.bundle import load_bundle
from model_bundles.estimators import make_pipeline
from schemas.errors import BadInputError
from schemas.records import PredictionRecord
from tests.support.trust_fixtures import build
from tools.trust import probe
from worker.cli.main import run_cli
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer


@pytest.fixture(scope="module")
def frame() -> Any:
    return probe.table()


def _numeric_only(frame: Any, out: Path, **extra: Any) -> Any:
    return build_bundle(
        Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(
            frame[["b", "c"]].fillna(0.0).to_numpy(), frame["label"]
        ),
        frame.fillna({"b": 0.0, "c": 0.0}),
        out,
        name="numpy-fitted",
        version="1",
        target="label",
        numeric=["b", "c"],
        **extra,
    )


def test_a_pipeline_fitted_without_feature_names_needs_the_order_confirmed(
    frame: Any, tmp_path: Path
) -> None:
    with pytest.raises(BadInputError, match="feature_order_confirmed=True"):
        _numeric_only(frame, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    assert _numeric_only(frame, tmp_path / "ok", feature_order_confirmed=True).digest


def test_features_follow_the_fitted_column_order_and_must_be_its_columns(
    frame: Any, tmp_path: Path
) -> None:
    fitted = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    fitted.fit(frame[["c", "b"]].fillna(0.0), frame["label"])
    common = {"name": "n", "version": "1", "target": "label"}
    data = frame.fillna({"b": 0.0, "c": 0.0})
    with pytest.raises(BadInputError, match=r"fitted on columns \['c', 'b'\]"):
        build_bundle(fitted, data, tmp_path / "a", numeric=["a", "b", "c"], **common)
    manifest = build_bundle(fitted, data, tmp_path / "b", numeric=["b", "c"], **common)
    assert [f.name for f in manifest.features] == ["c", "b"]
    outputs = load_bundle(tmp_path / "b").predict_frame(data)
    assert np.array_equal(outputs.scores, fitted.predict_proba(data[["c", "b"]]))


def test_n_jobs_is_set_to_one_for_scoring_and_recorded(frame: Any, tmp_path: Path) -> None:
    model = RandomForestClassifier(n_estimators=20, n_jobs=4, random_state=0)
    fitted = make_pipeline(probe.NUMERIC, probe.CATEGORICAL, model)
    fitted.fit(frame[[*probe.NUMERIC, *probe.CATEGORICAL]], frame["label"])
    manifest = build(fitted, frame, tmp_path / "rf")
    assert manifest.scoring_params == {"model__n_jobs": {"fitted": 4, "scoring": 1}}
    assert model.n_jobs == 4  # the caller's pipeline is left as it was
    assert load_bundle(tmp_path / "rf").pipeline.steps[-1][1].n_jobs == 1


def test_a_bundle_that_does_not_reproduce_is_refused_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        bundle_module, "golden_mismatches", lambda bundle: ["golden row 3 (batch size 1): x"]
    )
    args = ["bundle", "build", "--config", str(PENGUINS_CONFIG), "--data", str(PENGUINS_CSV)]
    assert run_cli([*args, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not prove itself" in err[0] and "golden row 3" in err[0]
    assert not (tmp_path / "b").exists() and not list(tmp_path.iterdir())


def _config(tmp_path: Path, estimator: str, params: str) -> Path:
    text = PENGUINS_CONFIG.read_text()
    old = text[text.index('estimator = "') : text.index("\nseed =")]
    path = tmp_path / "config.toml"
    path.write_text(text.replace(old, f'estimator = "{estimator}"\nparams = {params}\n'))
    return path


@pytest.mark.parametrize(
    ("estimator", "params"),
    [("LinearSVC", "{ C = 0.5 }"), ("sklearn.linear_model.RidgeClassifier", "{ alpha = 2.0 }")],
)
def test_decision_function_classifiers_are_served_with_decision_records(
    tmp_path: Path, estimator: str, params: str
) -> None:
    manifest = build_from_config(_config(tmp_path, estimator, params), PENGUINS_CSV, tmp_path / "b")
    assert manifest.decision and manifest.estimator.class_path.endswith(estimator.split(".")[-1])
    assert "log_loss" not in manifest.metrics  # no probabilities to score
    bundle = load_bundle(tmp_path / "b")
    assert bundle.reference.class_scores is None  # drift compares the predicted labels
    events = [row.event for row in bundle.reference.golden[:7]]
    batch = BatchScorer(bundle).score([InputEvent(orjson.dumps(e)) for e in events])
    records = [orjson.loads(r) for r in batch.records]
    assert all(
        "scores" not in r and set(r["decision"]) == set(manifest.classes or []) for r in records
    )
    for record, row in zip(records, bundle.reference.golden, strict=False):
        assert (
            list(record["decision"].values()) == row.scores
            and record["prediction"] == row.prediction
        )
        PredictionRecord.model_validate(record)


def test_a_binary_decision_record_has_one_entry_the_positive_class(
    frame: Any, tmp_path: Path
) -> None:
    from sklearn.svm import SVC

    fitted = make_pipeline(probe.NUMERIC, probe.CATEGORICAL, SVC())
    fitted.fit(frame[[*probe.NUMERIC, *probe.CATEGORICAL]], frame["label"])
    build(fitted, frame, tmp_path / "svc")
    bundle = load_bundle(tmp_path / "svc")
    event = bundle.reference.golden[0].event
    record = orjson.loads(BatchScorer(bundle).score([InputEvent(orjson.dumps(event))]).records[0])
    assert list(record["decision"]) == ["yes"]
    value = record["decision"]["yes"]
    assert record["prediction"] == ("yes" if value > 0 else "no")
    assert np.isfinite(value)


def test_an_estimator_of_the_wrong_task_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not a scikit-learn classifier"):
        build_from_config(_config(tmp_path, "SVR", "{}"), PENGUINS_CSV, tmp_path / "b")
