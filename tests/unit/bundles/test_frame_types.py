"""Frame types as fitted (issue 25): a bundle serves the pipeline as the team fitted it.

The team reads its CSV with ``pd.read_csv`` (int64, bool, str columns; datetimes
parsed), fits on that frame and builds; every row sent as a JSON event must score
as the team's ``pipeline.predict_proba`` on its own frame, bit for bit, whatever
the batch it arrives in.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from feature_engine.datetime import DatetimeFeatures
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from bench.typed import typed_bundle as fitted_dtypes_bundle
from model_bundles.build import build_bundle
from model_bundles.bundle import Bundle, load_bundle
from schemas.errors import BadInputError
from schemas.manifest import FeatureSpec
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer

ROWS = 1000


def _notebook_csv(tmp_path: Path) -> pd.DataFrame:
    """What a notebook holds after ``pd.read_csv``: int64 zone, bool flag, str label."""
    rng = np.random.default_rng(7)
    zone = rng.integers(1, 6, ROWS)
    flag = rng.random(ROWS) < 0.5
    noisy = rng.random(ROWS) < 0.1
    label = np.where(((zone >= 3) ^ flag) ^ noisy, "yes", "no")
    path = tmp_path / "train.csv"
    pd.DataFrame({"zone": zone, "flag": flag, "label": label}).to_csv(path, index=False)
    return pd.read_csv(path)


def _served(bundle: Bundle, events: list[dict[str, Any]], batch: int) -> list[Any]:
    """What the live worker writes for each event: its record, or its dead letter."""
    scorer = BatchScorer(bundle, include_source=False)
    out: list[Any] = []
    for start in range(0, len(events), batch):
        chunk = [InputEvent(orjson.dumps(e)) for e in events[start : start + batch]]
        scored = scorer.score(chunk)
        outcome: list[Any] = [None] * len(chunk)
        for i, record in zip(scored.indices, scored.records, strict=True):
            outcome[i] = orjson.loads(record)
        for rejected in scored.rejected:
            reason = rejected.rejection
            outcome[rejected.index] = (reason.reason.value, reason.detail)
        out.extend(outcome)
    return out


def _scores(records: list[Any], classes: list[Any]) -> np.ndarray:
    return np.array([[r["scores"][str(c)] for c in classes] for r in records])


@pytest.mark.parametrize("columns", [["zone", "flag"], ["zone"], ["flag"]])
def test_read_csv_integer_and_bool_categories_serve_the_notebook_scores(
    tmp_path: Path, columns: list[str]
) -> None:
    frame = _notebook_csv(tmp_path)
    assert str(frame["zone"].dtype) == "int64" and str(frame["flag"].dtype) == "bool"
    pipeline = make_pipeline(
        ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), columns)]),
        LogisticRegression(),
    ).fit(frame[columns], frame["label"])
    manifest = build_bundle(
        pipeline, frame, tmp_path / "b", name="t", version="1", target="label", categorical=columns
    )
    assert {f.name: f.dtype for f in manifest.features} == {c: str(frame[c].dtype) for c in columns}
    bundle = load_bundle(tmp_path / "b")
    events = [{c: row[c] for c in columns} for row in frame[columns].to_dict("records")]
    events = [orjson.loads(orjson.dumps(e, default=lambda v: v.item())) for e in events]
    records = _served(bundle, events, batch=100)
    notebook = pipeline.predict_proba(frame[columns])
    equal = np.all(_scores(records, list(pipeline.classes_)) == notebook, axis=1)
    assert int(equal.sum()) == ROWS  # before: 0 of 1,000 (zone), 418 (flag)
    predictions = [r["prediction"] for r in records]
    assert predictions == pipeline.predict(frame[columns]).tolist()


def test_values_that_do_not_fit_the_fitted_dtype_are_wrong_type(tmp_path: Path) -> None:
    frame = _notebook_csv(tmp_path)
    pipeline = make_pipeline(
        ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), ["zone", "flag"])]),
        LogisticRegression(),
    ).fit(frame[["zone", "flag"]], frame["label"])
    build_bundle(
        pipeline, frame, tmp_path / "b", name="t", version="1", target="label",
        categorical=["zone", "flag"],
    )  # fmt: skip
    bundle = load_bundle(tmp_path / "b")
    cases = [
        ({"zone": "3", "flag": True}, "feature 'zone' must be an integer (int64), got '3'"),
        ({"zone": 3.5, "flag": True}, "feature 'zone' must be an integer (int64), got 3.5"),
        ({"zone": True, "flag": True}, "feature 'zone' must be an integer (int64), got True"),
        ({"zone": 2**63, "flag": True}, "must be an integer from -9223372036854775808"),
        ({"zone": 3, "flag": "yes"}, "feature 'flag' must be true or false (bool), got 'yes'"),
        ({"zone": 3, "flag": 1}, "feature 'flag' must be true or false (bool), got 1"),
    ]
    outcomes = _served(bundle, [event for event, _ in cases], batch=len(cases))
    for (_, detail), outcome in zip(cases, outcomes, strict=True):
        assert outcome[0] == "wrong_type" and detail in outcome[1]
    # a null for a dtype that holds no missing value: the pipeline never saw one
    assert _served(bundle, [{"zone": None, "flag": True}], 1)[0][0] == "missing_feature"


def test_a_lone_surrogate_in_a_text_column_is_wrong_type_on_every_path(tmp_path: Path) -> None:
    """``"\\ud800"`` in JSON is no Unicode text. A str or string column holds UTF-8 when
    pandas has pyarrow (the research commands): there the batch raised, while the live
    worker (pyarrow left out) scored the event. It is wrong_type on every path now."""
    bundle = fitted_dtypes_bundle(tmp_path / "b")
    good = b'{"count":1,"small":2,"maybe":null,"flag":true,"ok":false,"code":"x","name":"a"}'
    for field, value in (("code", b'"x"'), ("name", b'"a"')):
        bad = good.replace(value, b'"caf\\u00e9 \\ud800"')
        for fast in (True, False):
            scorer = BatchScorer(bundle)
            if not fast:
                scorer._columns = None  # the general path alone
            scored = scorer.score([InputEvent(good), InputEvent(bad)])
            assert scored.indices == [0], (field, fast)
            (rejected,) = scored.rejected
            assert rejected.index == 1 and rejected.rejection.reason.value == "wrong_type"
            assert f"'{field}'" in rejected.rejection.detail, rejected.rejection.detail


# --- datetimes: one declared parse per value, never dependent on the batch ---

DATETIMES = [
    "2024-03-01 03:00:00",
    "2024-03-01T03:00:00Z",
    "2024-03-01T04:00:00+01:00",
    "2024-03-01T03:00:00.250000",
    "2024-03-01",
    "2024-03-01T03:00",
]


def _datetime_bundle(tmp_path: Path, utc: bool) -> tuple[Pipeline, pd.DataFrame, Bundle]:
    rng = np.random.default_rng(3)
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 90 * 24, 400), unit="h")
    path = tmp_path / "times.csv"
    label = np.where(stamps.hour < 12, "am", "pm")
    pd.DataFrame({"at": stamps.strftime("%Y-%m-%d %H:%M:%S"), "label": label}).to_csv(path)
    frame = pd.read_csv(path, parse_dates=["at"])
    if utc:
        frame["at"] = frame["at"].dt.tz_localize("UTC")
    pipeline = Pipeline(
        [
            ("parts", DatetimeFeatures(variables=["at"], features_to_extract=["hour", "month"])),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame[["at"]], frame["label"])
    build_bundle(pipeline, frame, tmp_path / "b", name="t", version="1", target="label",
                 numeric=["at"])  # fmt: skip
    return pipeline, frame, load_bundle(tmp_path / "b", trust_packages=["feature_engine"])


@pytest.mark.parametrize("utc", [False, True])
def test_the_datetime_pair_scores_the_same_alone_and_together(tmp_path: Path, utc: bool) -> None:
    pipeline, frame, bundle = _datetime_bundle(tmp_path, utc)
    assert bundle.features[0].dtype == str(frame["at"].dtype)
    events = [{"at": text} for text in DATETIMES]
    alone = _served(bundle, events, batch=1)
    together = _served(bundle, events, batch=len(events))
    assert alone == together
    assert all(isinstance(r, dict) for r in alone)  # every ISO form is served
    # the first three are one instant (03:00 UTC): one score, the notebook's
    stamp = pd.Timestamp("2024-03-01 03:00:00", tz="UTC" if utc else None)
    notebook = pipeline.predict_proba(
        pd.DataFrame({"at": pd.Series([stamp], dtype=frame["at"].dtype)})
    )
    for record in alone[:3]:
        assert _scores([record], list(pipeline.classes_))[0].tolist() == notebook[0].tolist()


def test_a_datetime_that_is_not_iso_8601_is_wrong_type(tmp_path: Path) -> None:
    _, _, bundle = _datetime_bundle(tmp_path, utc=False)
    bad = ["now", "03/01/2024", "2024-02-30", "2024-03-01T03:00:00.000000001", 1709262000]
    for outcome in _served(bundle, [{"at": b} for b in bad], batch=len(bad)):
        assert outcome[0] == "wrong_type" and "ISO 8601" in outcome[1]


# --- any batch: the same record or the same dead letter ---


@pytest.fixture(scope="module")
def typed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    rng = np.random.default_rng(11)
    n = 300
    frame = pd.DataFrame(
        {
            "count": rng.integers(0, 9, n),
            "maybe": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "flag": rng.random(n) < 0.5,
            "code": pd.Series(rng.choice(["01", "2", "x"], n), dtype="str"),
            "at": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 1000, n), unit="h"),
        }
    )
    frame.loc[::7, "maybe"] = pd.NA
    frame["label"] = np.where(frame["flag"] ^ (frame["count"] > 4), "a", "b")
    features = ["count", "maybe", "flag", "code", "at"]
    pipeline = Pipeline(
        [
            ("parts", DatetimeFeatures(variables=["at"], features_to_extract=["hour"])),
            (
                "encode",
                ColumnTransformer(
                    [
                        ("numbers", SimpleImputer(), ["count", "maybe", "at_hour"]),
                        ("onehot", OneHotEncoder(handle_unknown="ignore"), ["flag", "code"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame[features], frame["label"])
    out = tmp_path_factory.mktemp("typed") / "b"
    build_bundle(pipeline, frame, out, name="typed", version="1", target="label",
                 numeric=["count", "maybe", "at"], categorical=["flag", "code"])  # fmt: skip
    return load_bundle(out, trust_packages=["feature_engine"])


_any_value = (
    st.none() | st.booleans() | st.integers(-3, 12) | st.floats(-2, 2) | st.text(max_size=3)
)
_event = st.fixed_dictionaries(
    {
        "count": st.integers(0, 9) | _any_value,
        "maybe": st.integers(0, 5) | st.none() | _any_value,
        "flag": st.booleans() | _any_value,
        "code": st.sampled_from(["01", "2", "x", "1", "y"]) | _any_value,
        "at": st.sampled_from(DATETIMES) | st.sampled_from(["2024-03-01 27:00:00", "x"]),
    }
).map(lambda e: {k: v for k, v in e.items() if v != "absent"})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(_event, min_size=1, max_size=12))
def test_an_events_outcome_never_depends_on_its_batch(
    batch: list[dict[str, Any]], typed_bundle: Bundle
) -> None:
    alone = [_served(typed_bundle, [event], 1)[0] for event in batch]
    assert _served(typed_bundle, batch, len(batch)) == alone
    assert _served(typed_bundle, batch[::-1], len(batch)) == alone[::-1]


# --- frames of mixed dtypes, fitted as they are ---

DTYPES = ["int64", "Int64", "bool", "boolean", "float64", "str", "category", "datetime"]


@st.composite
def _mixed_frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(12, 40))
    kinds = draw(st.lists(st.sampled_from(DTYPES), min_size=1, max_size=5, unique=True))
    columns: dict[str, Any] = {}
    for kind in kinds:
        ints = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
        holes = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        if kind == "int64":
            columns[kind] = np.array(ints, dtype=np.int64)
        elif kind == "Int64":
            columns[kind] = pd.array(
                [None if h else v for v, h in zip(ints, holes, strict=True)], "Int64"
            )
        elif kind == "bool":
            columns[kind] = np.array([v > 0 for v in ints])
        elif kind == "boolean":
            columns[kind] = pd.array(
                [None if h else v > 0 for v, h in zip(ints, holes, strict=True)], "boolean"
            )
        elif kind == "float64":
            columns[kind] = np.array(
                [np.nan if h else v / 3 for v, h in zip(ints, holes, strict=True)]
            )
        elif kind == "str":  # numeric-looking text stays text
            texts = ["1", "01", "1.0", "True", "x"]
            columns[kind] = pd.Series([texts[v % 5] for v in ints], dtype="str")
        elif kind == "category":
            columns[kind] = pd.Categorical([v % 3 for v in ints], categories=[0, 1, 2])
        else:
            columns[kind] = pd.Timestamp("2024-03-01") + pd.to_timedelta(
                [v * 5 for v in ints], unit="h"
            )
    frame = pd.DataFrame(columns)
    label = draw(st.lists(st.sampled_from(["a", "b"]), min_size=n, max_size=n))
    frame["label"] = ["a", "b", *label[2:]]
    return frame


TEAM_MODULE = """
import numpy as np
import pandas as pd


def as_numbers(frame):
    \"\"\"The team's own feature step: every column as float (datetimes in hours).\"\"\"
    out = {}
    for name, column in frame.items():
        if pd.api.types.is_datetime64_any_dtype(column):
            column = (column - pd.Timestamp("2024-01-01")) / pd.Timedelta(hours=1)
        elif isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype("Int64")
        elif pd.api.types.is_string_dtype(column):
            column = column.map({"1": 1, "01": 2, "1.0": 3, "True": 4}).astype("Float64")
        out[name] = pd.array(column, dtype="Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.DataFrame(out)
"""


@pytest.fixture(scope="module")
def team_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The team's module beside its notebook (packed into the bundle's code/)."""
    folder = tmp_path_factory.mktemp("notebook")
    (folder / "i25_team_steps.py").write_text(TEAM_MODULE)
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("i25_team_steps")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("i25_team_steps", None)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.generate],
)
@given(frame=_mixed_frames())
def test_mixed_dtype_frames_fitted_as_they_are_serve_the_pipeline(
    frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory, team_module: ModuleType
) -> None:
    features = [c for c in frame.columns if c != "label"]
    pipeline = Pipeline(
        [
            ("numbers", FunctionTransformer(team_module.as_numbers)),
            ("impute", SimpleImputer()),
            ("model", LogisticRegression()),
        ]
    ).fit(frame[features], frame["label"])
    out = tmp_path_factory.mktemp("mixed") / "b"
    manifest = build_bundle(pipeline, frame, out, name="m", version="1", target="label",
                            code=[team_module])  # fmt: skip
    assert [f.dtype for f in manifest.features] == [str(frame[c].dtype) for c in features]
    bundle = load_bundle(
        out, trust_code=[manifest.trust.code.digest] if manifest.trust.code else []
    )
    events = [orjson.loads(orjson.dumps(e)) for e in _producer(frame[features])]
    records = _served(bundle, events, batch=len(events))
    assert all(isinstance(r, dict) for r in records), records
    # the notebook's predict_proba over whole 64-row blocks: a BLAS kernel's leftover rows
    # take other code, so a row's last bits may depend on how many rows share its call
    # (model_bundles.predict); the worker scores in such blocks at every batch size
    rows = len(frame)
    padded = frame[features].iloc[np.arange(rows + (-rows % 64)) % rows]
    notebook = pipeline.predict_proba(padded)[:rows]
    assert np.array_equal(_scores(records, list(pipeline.classes_)), notebook)


def _producer(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a producer writes them: nulls as null, numbers in full (round-trip)
    precision, datetimes as ISO 8601 text. (``DataFrame.to_json`` keeps 10 digits.)"""

    def plain(value: Any) -> Any:
        if value is None or value is pd.NA or value is pd.NaT:
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
        value = value.item() if isinstance(value, np.generic) else value
        return None if isinstance(value, float) and np.isnan(value) else value

    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


# --- refused at build, one line naming the column or the fix ---


def test_a_frame_served_otherwise_than_fitted_is_refused_naming_column_and_row(
    tmp_path: Path,
) -> None:
    frame = _notebook_csv(tmp_path)
    pipeline = make_pipeline(
        ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), ["zone"])]),
        LogisticRegression(),
    ).fit(frame[["zone"]], frame["label"])
    as_text = FeatureSpec(name="zone", kind="categorical", dtype="object", nullable=False,
                          categories=["1", "2", "3", "4", "5"])  # fmt: skip
    with pytest.raises(BadInputError) as refused:
        build_bundle(pipeline, frame, tmp_path / "b", name="t", version="1", target="label",
                     features=[as_text])  # fmt: skip
    message = str(refused.value)
    assert "column 'zone' (fitted int64, served object)" in message
    first = frame["zone"].iloc[0]
    assert f"differs first at training row index 0: {first} fitted, '{first}' served" in message
    assert "\n" not in message and not (tmp_path / "b").exists()


def test_a_lambda_names_itself_and_the_fix(tmp_path: Path) -> None:
    frame = _notebook_csv(tmp_path)
    pipeline = make_pipeline(FunctionTransformer(lambda x: x * 2), LogisticRegression())
    pipeline.fit(frame[["zone"]], frame["label"])
    with pytest.raises(BadInputError, match=r"functiontransformer__func is a lambda \(.*"
                       r"test_frame_types.py, line \d+\).*write it as a def"):  # fmt: skip
        build_bundle(pipeline, frame, tmp_path / "b", name="t", version="1", target="label",
                     numeric=["zone"])  # fmt: skip


class NoNames:
    """A team's first step that does not record ``feature_names_in_``."""

    def fit(self, X: Any, y: Any = None) -> NoNames:
        return self

    def transform(self, X: Any) -> Any:
        return X


def test_a_first_step_without_feature_names_says_so(tmp_path: Path) -> None:
    frame = _notebook_csv(tmp_path)
    pipeline = Pipeline([("mine", NoNames()), ("model", LogisticRegression())])
    pipeline.fit(frame[["zone"]], frame["label"])
    with pytest.raises(BadInputError) as refused:
        build_bundle(pipeline, frame, tmp_path / "b", name="t", version="1", target="label",
                     numeric=["zone"])  # fmt: skip
    named = f"first step 'mine' ({NoNames.__module__}.NoNames) sets no feature_names_in_"
    assert named in str(refused.value)
    assert "numpy array" not in str(refused.value)


def test_a_dtype_without_a_json_form_is_refused(tmp_path: Path) -> None:
    frame = _notebook_csv(tmp_path)
    frame["wait"] = pd.to_timedelta(frame["zone"], unit="s")
    pipeline = make_pipeline(LogisticRegression())
    pipeline.fit(frame[["wait"]].assign(wait=frame["zone"]), frame["label"])
    with pytest.raises(BadInputError, match="column 'wait': dtype timedelta64"):
        build_bundle(pipeline, frame, tmp_path / "b", name="t", version="1", target="label",
                     numeric=["wait"])  # fmt: skip


# --- bundle check and inspect ---


@pytest.fixture(scope="module")
def csv_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("csv")
    frame = _notebook_csv(folder)
    pipeline = make_pipeline(
        ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), ["zone", "flag"])]),
        LogisticRegression(),
    ).fit(frame[["zone", "flag"]], frame["label"])
    build_bundle(pipeline, frame, folder / "b", name="t", version="1", target="label",
                 categorical=["zone", "flag"])  # fmt: skip
    return folder / "b"


def _write_sample(path: Path, events: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events) + b"not json\n")
    return path


def test_bundle_check_reports_rates_and_dead_letters(
    csv_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli.main import run_cli

    events = [
        {"zone": 3, "flag": True},
        {"zone": 9, "flag": False},  # unknown category: scored
        {"zone": "3", "flag": True},  # wrong_type
        {"zone": 2},  # flag absent: missing_feature
        {"zone": 1, "flag": None},  # null, not imputed: missing_feature
    ]
    sample = _write_sample(tmp_path / "sample.jsonl", events)
    assert run_cli(["bundle", "check", str(csv_bundle), "--events", str(sample), "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    zone, flag = report["features"]
    assert (report["events"], report["objects"]) == (6, 5)
    assert (zone["dtype"], zone["present_rate"], zone["type_mismatch_rate"]) == ("int64", 1, 0.2)
    assert zone["unknown_category_rate"] == 0.25  # 9 of the 4 well-typed values
    assert (flag["absent_rate"], flag["null_rate"], flag["present_rate"]) == (0.2, 0.2, 0.6)
    assert report["dead_letters"] == {"invalid_json": 1, "missing_feature": 2, "wrong_type": 1}
    assert report["dead_letter_rate"] == 4 / 6 and report["mostly_absent"] == []
    assert run_cli(["bundle", "check", str(csv_bundle), "--events", str(sample)]) == 0
    table = capsys.readouterr().out
    assert "would be dead letters: 66.7% (invalid_json 16.7%, missing_feature 33.3%" in table
    assert "zone *   int64  100.0%   0.0%    0.0%   20.0%       25.0%" in table


def test_bundle_check_fails_when_a_needed_feature_is_mostly_absent(
    csv_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli.main import run_cli

    sample = _write_sample(tmp_path / "s.jsonl", [{"zone": 1}, {"zone": 2}, {"zone": 3, "flag": 1}])
    assert run_cli(["bundle", "check", str(csv_bundle), "--events", str(sample)]) == 1
    assert "feature 'flag' is absent from most events: the model needs it" in (
        capsys.readouterr().out
    )


def test_bundle_inspect_prints_the_fitted_types(
    csv_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli.main import run_cli

    assert run_cli(["bundle", "inspect", str(csv_bundle)]) == 0
    assert "features: zone (categorical, int64), flag (categorical, bool)" in (
        capsys.readouterr().out
    )


# --- the event model (JSON Schema for producers) agrees with the worker's check ---

FITTED = [
    FeatureSpec(name="small", kind="numeric", dtype="int8", nullable=False),
    FeatureSpec(name="count", kind="numeric", dtype="Int64", nullable=True),
    FeatureSpec(name="ratio", kind="numeric", dtype="float32", nullable=True),
    FeatureSpec(name="flag", kind="categorical", dtype="bool", nullable=False),
    FeatureSpec(name="maybe", kind="categorical", dtype="boolean", nullable=True),
    FeatureSpec(name="code", kind="categorical", dtype="str", nullable=True),
    FeatureSpec(
        name="grade",
        kind="categorical",
        dtype="category",
        nullable=True,
        category_dtype={"categories": [1, 2, 3], "ordered": True},
    ),
    FeatureSpec(
        name="level",
        kind="categorical",
        dtype="category",
        nullable=False,
        category_dtype={"categories": [0.5, 2.0], "ordered": False},
    ),
]
_json_value = (
    st.none()
    | st.booleans()
    | st.integers(-200, 200)
    | st.integers()
    | st.sampled_from([0.5, 2.0, 2, 1e300, 3.5])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3)
)


@settings(max_examples=400)
@given(data=st.data())
def test_event_model_accepts_exactly_what_check_event_accepts_for_fitted_dtypes(
    data: st.DataObject,
) -> None:
    from pydantic import ValidationError

    from model_bundles.events import check_event
    from schemas.events import event_model

    event = {f.name: data.draw(_json_value) for f in FITTED if data.draw(st.integers(0, 9))}
    try:
        event_model(FITTED).model_validate(event)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (check_event(event, FITTED) is None)
