"""Training data means what it says (SPEC.md): values, labels and refusals, file to event."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from model_bundles.build import build_from_config
from model_bundles.bundle import Bundle, load_bundle
from model_bundles.events import check_batch
from model_bundles.values import category_text, numeric_array
from schemas.errors import BadInputError
from schemas.wire_names import RejectReason
from tests.support.training_tables import fit_in_memory, score_in_memory, write_config
from worker.cli.main import run_cli
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer
from worker.monitoring.drift_bins import DriftLayout


def _build(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv", **config: object) -> Bundle:
    data = tmp_path / name
    frame.to_csv(data, index=False) if name.endswith(".csv") else frame.to_parquet(data)
    cfg = write_config(tmp_path / "config.toml", **config)  # type: ignore[arg-type]
    build_from_config(cfg, data, tmp_path / "bundle")
    return load_bundle(tmp_path / "bundle")


def _country_table(rows: int = 300, seed: int = 12) -> pd.DataFrame:
    """``NA`` (Namibia) drives the label: the fault's table, drawn afresh."""
    rng = np.random.default_rng(seed)
    country = rng.choice(["NA", "DE", "FR", "US", "ZA"], rows)
    label = np.where(rng.random(rows) < np.where(country == "NA", 0.9, 0.2), "yes", "no")
    return pd.DataFrame({"country": country, "x": rng.normal(size=rows).round(3), "y": label})


def test_na_is_a_category_and_scores_as_the_pipeline_fitted_on_the_values_as_written(
    tmp_path: Path,
) -> None:
    bundle = _build(tmp_path, _country_table(), target="y", numeric=["x"], categorical=["country"])
    cfg, csv = tmp_path / "config.toml", tmp_path / "data.csv"
    assert bundle.features[1].categories == ["DE", "FR", "NA", "US", "ZA"]
    event = pd.DataFrame({"x": [0.0], "country": ["NA"]})
    as_written = fit_in_memory(pd.read_csv(csv, keep_default_na=False), cfg)
    expected = score_in_memory(as_written, event, cfg).scores
    got = bundle.predict_events([{"x": 0.0, "country": "NA"}]).scores
    assert got is not None and expected is not None
    assert got.tobytes() == expected.tobytes()  # bit for bit
    yes = list(bundle.manifest.classes or []).index("yes")
    # pandas' default reading (NA -> missing, imputed) scores the same event lower: the fault
    as_missing = fit_in_memory(pd.read_csv(csv), cfg)
    imputed = score_in_memory(as_missing, event.astype({"country": object}), cfg).scores
    assert imputed is not None and got[0, yes] > 0.5 > imputed[0, yes]


def test_an_integer_category_with_a_blank_field_is_hit_by_the_string_and_the_integer(
    tmp_path: Path,
) -> None:
    grades = [1, 2, 3, None] * 10
    frame = pd.DataFrame(
        {"grade": pd.array(grades, dtype="Int64"), "y": ["a", "b"] * 20, "x": range(40)}
    )
    bundle = _build(tmp_path, frame, target="y", numeric=["x"], categorical=["grade"])
    assert bundle.features[1].categories == ["1", "2", "3"]
    events = [{"x": 1.0, "grade": "1"}, {"x": 1.0, "grade": 1}, {"x": 1.0, "grade": None}]
    checked = check_batch(events, bundle.features)
    assert checked.rejected == [] and checked.unknown_categories == {}
    assert checked.frame["grade"].tolist()[:2] == ["1", "1"]
    outputs = bundle.predict_model_frame(checked.frame)
    assert outputs.scores is not None
    assert outputs.scores[0].tobytes() == outputs.scores[1].tobytes()
    for wrong in (1.0, True):
        rejection = bundle.check_event({"x": 1.0, "grade": wrong})
        assert rejection is not None and rejection.reason is RejectReason.WRONG_TYPE
        assert "a string or an integer" in rejection.detail


@pytest.mark.parametrize("task", ['task = "classification"', ""])
def test_integer_labels_give_integer_classes_in_the_manifest_and_the_records(
    tmp_path: Path, task: str
) -> None:
    frame = pd.DataFrame({"x": np.arange(40.0), "y": [0, 1] * 20})
    bundle = _build(tmp_path, frame, target="y", numeric=["x"], extra_model=task)
    assert bundle.manifest.classes == [0, 1]
    assert [type(c) for c in bundle.manifest.classes] == [int, int]
    scored = BatchScorer(bundle).score([InputEvent(b'{"x": 3.0, "event_id": "e"}')])
    record = orjson.loads(scored.records[0])
    assert type(record["prediction"]) is int and set(record["scores"]) == {"0", "1"}
    layout = DriftLayout(bundle.reference, bundle.features, bundle.manifest.classes)
    assert layout.prediction.labels == ("0", "1", "__unknown__")
    counts = layout.count(scored.frame, scored.outputs.predictions, scored.outputs.scores)
    assert layout.prediction.bins(counts).tolist()[2] == 0  # the integer label found its bin
    assert [s.name for s in layout.class_scores] == ["0", "1"]


def test_boolean_categories_take_json_booleans(tmp_path: Path) -> None:
    frame = pd.DataFrame({"flag": [True, False] * 10, "y": ["a"] * 10 + ["b"] * 10})
    bundle = _build(tmp_path, frame, "data.parquet", target="y", categorical=["flag"])
    assert bundle.features[0].categories == ["False", "True"]
    checked = check_batch([{"flag": True}, {"flag": "True"}], bundle.features)
    assert checked.unknown_categories == {} and checked.frame["flag"].tolist() == ["True"] * 2


def test_category_text_is_one_form_for_every_source() -> None:
    assert [category_text(v) for v in ("NA", "007", 1, np.int64(1), 1.0, 1.5, True)] == [
        "NA", "007", "1", "1", "1", "1.5", "True"
    ]  # fmt: skip
    assert all(category_text(v) is None for v in (None, np.nan, pd.NA))


BAD_BUILDS = [
    (  # the id column as a feature
        "id,x,y\n1,0.5,a\n2,0.7,b\n",
        {"numeric": ["x"], "categorical": ["id"], "extra_data": "id_column = 'id'"},
        "id column 'id' is listed as a feature",
    ),
    (  # a single class
        "x,y\n1,a\n2,a\n3,a\n4,a\n5,a\n",
        {"numeric": ["x"], "extra_model": 'task = "classification"'},
        "target 'y' has 1 class ('a') in 5 labelled rows",
    ),
    (  # too few labelled rows for the split: 4 rows, 2 classes, test_size 0.25
        "x,y\n1,a\n2,b\n3,a\n4,b\n,\n",
        {"numeric": ["x"]},
        "target 'y': 4 labelled rows are too few for test_size 0.25",
    ),
    (  # text in a numeric column: the column and the first bad line
        "x,y\n1,a\n2,b\nabc,a\n4,b\n",
        {"numeric": ["x"]},
        "numeric column 'x', line 4: 'abc' is not a number",
    ),
]


@pytest.mark.parametrize(("csv", "config", "message"), BAD_BUILDS)
def test_bad_training_data_is_exit_2_with_one_line_naming_the_column(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    csv: str,
    config: dict[str, object],
    message: str,
) -> None:
    data = tmp_path / "data.csv"
    data.write_text(csv)
    cfg = write_config(tmp_path / "config.toml", target="y", **config)  # type: ignore[arg-type]
    capsys.readouterr()
    code = run_cli(
        ["bundle", "build", "--config", str(cfg), "--data", str(data), "--out", str(tmp_path / "b")]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "b").exists()


def test_na_values_lists_more_missing_fields(tmp_path: Path) -> None:
    frame = pd.DataFrame({"c": ["N/A", "NA", "x", "y"] * 5, "y": ["a", "b"] * 10})
    bundle = _build(
        tmp_path, frame, target="y", categorical=["c"], extra_data="na_values = ['N/A']"
    )
    assert bundle.features[0].categories == ["NA", "x", "y"]
    assert bundle.reference.features["c"].missing_rate > 0


def test_numbers_are_strict_float64_with_the_first_bad_row_named() -> None:
    text = pd.Series(["1", " 2.5 ", "-3e2", None, ".5"], dtype=object)
    assert numeric_array(text, "x").tolist()[:3] == [1.0, 2.5, -300.0]
    assert np.isnan(numeric_array(text, "x")[3])
    listed = numeric_array(pd.Series(["1", "N/A"]), "x", missing_text=frozenset({"N/A"}))
    assert np.isnan(listed[1])
    for bad, row in ((["1", "inf"], 2), (["nan", "1"], 1), (["1", "2", "1_000"], 3)):
        with pytest.raises(BadInputError, match=f"numeric column 'x', row {row}: "):
            numeric_array(pd.Series(bad, dtype=object), "x")
    with pytest.raises(BadInputError, match="holds booleans"):
        numeric_array(pd.Series([True, False]), "x")
