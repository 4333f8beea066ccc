"""Frame types as fitted, the notebook's gaps (issue 25 follow-up).

``pd.read_csv`` turns an integer-coded category with one blank field into float64
(3.0, NaN); the team declares it ``categorical`` and its encoder is fitted on 3.0.
The bundle must serve it as float64, from JSON 3 or 3.0, with drift over the same
categories. A pipeline error during a build is one line, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from model_bundles.build import build_bundle
from model_bundles.bundle import Bundle, load_bundle
from schemas.errors import BadInputError
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer
from worker.monitoring.drift_bins import CategoricalBinner

ROWS = 300


def _read_csv_with_gaps(tmp_path: Path) -> pd.DataFrame:
    """zone: integer codes 1..3 with two blank fields (float64 after read_csv); flag: bool."""
    rng = np.random.default_rng(5)
    zone = rng.integers(1, 4, ROWS).astype(float)
    zone[[4, 8]] = np.nan
    flag = rng.random(ROWS) < 0.5
    label = ((np.nan_to_num(zone, nan=2.0) == 2) ^ flag).astype(int)
    path = tmp_path / "train.csv"
    pd.DataFrame({"event_id": [f"e{i}" for i in range(ROWS)], "zone": zone, "flag": flag,
                  "label": label}).to_csv(path, index=False)  # fmt: skip
    return pd.read_csv(path)


def _imputed_onehot(columns: list[str], unknown: str = "ignore") -> Any:
    return make_pipeline(
        ColumnTransformer([("c", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                               OneHotEncoder(handle_unknown=unknown)), columns)]),
        LogisticRegression(),
    )  # fmt: skip


def _score(bundle: Bundle, events: list[dict[str, Any]]) -> Any:
    return BatchScorer(bundle, include_source=False).score(
        [InputEvent(orjson.dumps(e)) for e in events]
    )


def test_an_integer_coded_category_read_as_float64_serves_as_fitted(tmp_path: Path) -> None:
    frame = _read_csv_with_gaps(tmp_path)
    assert str(frame["zone"].dtype) == "float64"
    pipeline = _imputed_onehot(["zone", "flag"]).fit(frame[["zone", "flag"]], frame["label"])
    # before: refused, "column 'zone' (fitted float64, served object) differs first ..."
    manifest = build_bundle(pipeline, frame, tmp_path / "b", name="t", version="1",
                            target="label", id_column="event_id",
                            categorical=["zone", "flag"])  # fmt: skip
    zone = {f.name: f for f in manifest.features}["zone"]
    assert (zone.kind, zone.dtype, zone.nullable) == ("categorical", "float64", True)
    assert zone.categories == ["1", "2", "3"]
    assert manifest.build["proved_rows"] == ROWS  # an integer, not "300"
    bundle = load_bundle(tmp_path / "b")

    events = [{"zone": None if np.isnan(z) else int(z), "flag": bool(f)}
              for z, f in zip(frame["zone"], frame["flag"], strict=True)]  # fmt: skip
    scored = _score(bundle, events)
    assert not scored.rejected
    assert str(scored.frame["zone"].dtype) == "float64"  # the encoder sees 3.0, as fitted
    served = np.array([list(orjson.loads(r)["scores"].values()) for r in scored.records])
    assert np.array_equal(served, pipeline.predict_proba(frame[["zone", "flag"]]))

    # JSON 3 and 3.0 are the same number of a float64 column; text is not a number
    same = _score(bundle, [{"zone": 3, "flag": True}, {"zone": 3.0, "flag": True}])
    three, three_point_0 = (orjson.loads(r)["scores"] for r in same.records)
    assert three == three_point_0
    text = _score(bundle, [{"zone": "3", "flag": True}])
    assert text.rejected[0].rejection.reason.value == "wrong_type"
    assert "must be a number (float64), got '3'" in text.rejected[0].rejection.detail

    # drift and unknown categories over the categories' canonical text
    reference = bundle.reference.features["zone"]
    assert reference.categories == ["1", "2", "3"]  # type: ignore[union-attr]
    unseen = _score(bundle, [{"zone": 7, "flag": True}, {"zone": 2.0, "flag": False}])
    assert unseen.unknown_categories == {"zone": 1}
    binner = CategoricalBinner(["1", "2", "3"])
    counts = binner.count(pd.array([3.0, 1.0, np.nan, 7.0], dtype="float64"))
    assert counts.tolist() == [1, 0, 1, 1, 1]  # 1, 2, 3, unknown, missing


def test_a_bool_column_with_gaps_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    frame = _read_csv_with_gaps(tmp_path)
    frame["flag"] = frame["flag"].astype(object)
    frame.loc[[3, 9], "flag"] = np.nan  # pd.read_csv of a bool column with blanks
    with pytest.raises(BadInputError) as refused:
        build_bundle(_imputed_onehot(["flag"]), frame, tmp_path / "b", name="t", version="1",
                     target="label", categorical=["flag"])  # fmt: skip
    message = str(refused.value)
    assert message.startswith("column 'flag': True/False with gaps (pd.read_csv gives an ")
    assert "frame['flag'] = frame['flag'].astype('boolean')" in message
    assert "dtype={'flag': 'boolean'}" in message and "\n" not in message
    frame["flag"] = frame["flag"].astype("boolean")  # the fix the line gives
    pipeline = _imputed_onehot(["flag"]).fit(frame[["flag"]], frame["label"])
    manifest = build_bundle(pipeline, frame, tmp_path / "b", name="t", version="1",
                            target="label", categorical=["flag"])  # fmt: skip
    assert [(f.dtype, f.nullable) for f in manifest.features] == [("boolean", True)]


def test_a_probe_the_pipeline_cannot_take_makes_the_feature_required(tmp_path: Path) -> None:
    """The nullability probe puts pd.NA in a boolean column; with an object column
    beside it, SimpleImputer compares NA and raises TypeError. Before: that raw
    traceback escaped build_bundle. Now the feature is required (not imputed)."""
    frame = _read_csv_with_gaps(tmp_path)
    frame["zone"] = frame["zone"].fillna(2).map(lambda z: f"z{int(z)}").astype(object)
    frame["flag"] = frame["flag"].astype("boolean")
    pipeline = _imputed_onehot(["zone", "flag"]).fit(frame[["zone", "flag"]], frame["label"])
    manifest = build_bundle(pipeline, frame, tmp_path / "b", name="t", version="1",
                            target="label", categorical=["zone", "flag"])  # fmt: skip
    flag = {f.name: f for f in manifest.features}["flag"]
    assert (flag.dtype, flag.nullable) == ("boolean", False)
    rejected = _score(load_bundle(tmp_path / "b"), [{"zone": "z1", "flag": None}]).rejected
    assert rejected[0].rejection.reason.value == "missing_feature"


def test_a_pipeline_that_fails_on_the_training_rows_is_one_line(tmp_path: Path) -> None:
    frame = _read_csv_with_gaps(tmp_path)
    fitted_on = frame[frame["zone"] != 3]  # the encoder never saw zone 3
    pipeline = _imputed_onehot(["zone"], unknown="error")
    pipeline.fit(fitted_on[["zone"]], fitted_on["label"])
    with pytest.raises(BadInputError) as refused:
        build_bundle(pipeline, frame, tmp_path / "b", name="t", version="1", target="label",
                     categorical=["zone"])  # fmt: skip
    message = str(refused.value)
    assert message.startswith("the pipeline fails scoring the training rows in ")
    assert "OneHotEncoder: ValueError: Found unknown categories" in message
    assert "pass as train the frame it was fitted on" in message and "\n" not in message
    assert not (tmp_path / "b").exists()


def test_an_integer_beyond_64_bits_is_shown_as_written(tmp_path: Path) -> None:
    frame = _read_csv_with_gaps(tmp_path)
    frame["count"] = np.arange(ROWS, dtype=np.int64) % 3
    pipeline = make_pipeline(
        ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["count"])]),
        LogisticRegression(),
    ).fit(frame[["count"]], frame["label"])
    build_bundle(pipeline, frame, tmp_path / "b", name="t", version="1", target="label",
                 categorical=["count"])  # fmt: skip
    bundle = load_bundle(tmp_path / "b")
    values = [b'{"count": 9999999999999999999999}', b'{"count": 9223372036854775808}',
              b'{"count": 1}']  # fmt: skip
    scored = BatchScorer(bundle, include_source=False).score([InputEvent(v) for v in values])
    assert scored.indices == [2]
    details = [r.rejection.detail for r in scored.rejected]
    int64 = "an integer from -9223372036854775808 to 9223372036854775807 (int64)"
    assert details == [
        f"feature 'count' must be {int64}, got 9999999999999999999999",  # before: got 1e+22
        f"feature 'count' must be {int64}, got 9223372036854775808",
    ]
