"""The tabular libraries teams use, each round trip bit for bit under --trust-package.

For every library (docs/catalogue.md, "Libraries"), a team's pipeline is fitted
on a small frame (numeric columns with missing values, a categorical column with
missing values), built into a bundle, loaded as the worker loads it (with the
operator's ``--trust-package``) and fed the training rows as JSON events through
the worker's batch scorer; every score must equal ``predict_proba`` of the
fitted pipeline on the team's own frame, bit for bit. Loading without the
package's trust must refuse. No pickle anywhere: the model file is skops.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from model_bundles.build import build_bundle
from model_bundles.bundle import load_bundle
from model_bundles.estimators import make_preprocessor
from schemas.errors import BadInputError, BundleError
from tools.trust import probe
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer

NUMERIC, CATEGORICAL = probe.NUMERIC, probe.CATEGORICAL
FEATURES = [*NUMERIC, *CATEGORICAL]


def team_frame(rows: int = 120) -> pd.DataFrame:
    """The probe table with an integer 0/1 target (``y``), as XGBoost and the WOE encoder need."""
    frame = probe.table(rows=rows, seed=3)
    frame["y"] = (frame["label"] == "yes").astype("int64")
    return frame


FRAME = team_frame()


def events_of(frame: pd.DataFrame) -> list[InputEvent]:
    """Each row as the JSON a producer writes: a missing value is null."""

    def plain(value: Any) -> Any:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return value.item() if isinstance(value, np.generic) else value

    return [
        InputEvent(orjson.dumps({"event_id": str(i), **{c: plain(row[c]) for c in FEATURES}}))
        for i, (_, row) in enumerate(frame[FEATURES].iterrows())
    ]


def native_state(out: Path) -> list[bytes]:
    """The files of the bundle's skops archive (its schema and the byte strings it holds)."""
    with zipfile.ZipFile(out / "model.skops") as archive:
        return [archive.read(name) for name in archive.namelist()]


@contextmanager
def no_pickle() -> Iterator[None]:
    """Any unpickling (pickle, its C module, joblib) inside the block fails the test."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("unpickling on the load path")

    import _pickle
    import pickle

    import joblib

    with pytest.MonkeyPatch.context() as patch:
        for module in (pickle, _pickle):
            for name in ("load", "loads", "Unpickler"):
                patch.setattr(module, name, refuse)
        patch.setattr(joblib, "load", refuse)
        yield


def round_trip(
    pipeline: Any,
    out: Path,
    package: str | None,
    frame: pd.DataFrame = FRAME,
    target: str = "y",
) -> None:
    """Fit, build, refuse without trust, load with it, score the rows as events: bit for bit
    (``predict_proba`` for a classifier, ``predict`` for a regressor)."""
    regression = target == "value"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.fit(frame[FEATURES], frame[target])
        ask = pipeline.predict if regression else pipeline.predict_proba
        expected = np.asarray(ask(frame[FEATURES]), dtype=np.float64)
        manifest = build_bundle(
            pipeline, frame, out, name="library", version="1", target=target,
            numeric=NUMERIC, categorical=CATEGORICAL,
            task="regression" if regression else "classification",
        )  # fmt: skip
    with no_pickle():
        if package is None:
            assert manifest.trust.packages == {}
            bundle = load_bundle(out)
        else:
            assert package in manifest.trust.packages
            with pytest.raises(BundleError, match=f"needs --trust-package {package}"):
                load_bundle(out)
            bundle = load_bundle(out, trust_packages=[package])
        assert bundle.selfcheck.ok
        scored = BatchScorer(bundle).score(events_of(frame))
    assert not scored.rejected
    outputs = scored.outputs.predictions if regression else scored.outputs.scores
    assert outputs is not None
    served = np.asarray(outputs, dtype=np.float64)
    assert served.shape == expected.shape
    differs = np.flatnonzero((served != expected).reshape(len(served), -1).any(1))
    assert served.tobytes() == expected.tobytes(), f"rows {differs[:10]} differ"


@pytest.mark.parametrize("library", ["xgboost", "lightgbm", "catboost"])
def test_each_booster_regressor_round_trips(library: str, tmp_path: Path) -> None:
    from catboost import CatBoostRegressor
    from lightgbm import LGBMRegressor
    from xgboost import XGBRegressor

    model = {
        "xgboost": lambda: XGBRegressor(n_estimators=15, max_depth=3, n_jobs=1, random_state=0),
        "lightgbm": lambda: LGBMRegressor(n_estimators=20, min_child_samples=5, verbose=-1),
        "catboost": lambda: CatBoostRegressor(
            iterations=20, depth=3, verbose=0, random_seed=0, thread_count=1,
            allow_writing_files=False,
        ),
    }[library]()  # fmt: skip
    pipeline = Pipeline([("prep", make_preprocessor(NUMERIC, CATEGORICAL)), ("model", model)])
    round_trip(pipeline, tmp_path / "b", library, target="value")


def test_xgboost_round_trips(tmp_path: Path) -> None:
    from xgboost import XGBClassifier

    model = XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1, random_state=0)
    round_trip(Pipeline([("prep", make_preprocessor(NUMERIC, CATEGORICAL)), ("model", model)]),
               tmp_path / "b", "xgboost")  # fmt: skip
    # XGBoost's own UBJSON memory snapshot ({"Config": ..., "Model": ...}), a skops byte string
    assert any(f.startswith(b"{L") and b"Config" in f[:32] for f in native_state(tmp_path / "b"))


def test_xgboost_on_raw_missing_values_round_trips(tmp_path: Path) -> None:
    from xgboost import XGBClassifier

    encode = ColumnTransformer(
        [("colour", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL)],
        remainder="passthrough",
    )
    model = XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1, random_state=0)
    round_trip(Pipeline([("encode", encode), ("model", model)]), tmp_path / "b", "xgboost")


def test_lightgbm_round_trips(tmp_path: Path) -> None:
    """Refused before: its fitted best_score_ is a defaultdict(OrderedDict)."""
    from lightgbm import LGBMClassifier

    model = LGBMClassifier(n_estimators=20, num_leaves=7, min_child_samples=5, verbose=-1)
    round_trip(Pipeline([("prep", make_preprocessor(NUMERIC, CATEGORICAL)), ("model", model)]),
               tmp_path / "b", "lightgbm")  # fmt: skip
    # LightGBM's own model text (Booster.model_to_string), a string in the skops schema
    assert any(b"version=v4" in f and b"num_class=1" in f for f in native_state(tmp_path / "b"))


def test_catboost_round_trips(tmp_path: Path) -> None:
    from catboost import CatBoostClassifier

    model = CatBoostClassifier(
        iterations=20, depth=3, verbose=0, random_seed=0, thread_count=1,
        allow_writing_files=False,
    )  # fmt: skip
    round_trip(Pipeline([("prep", make_preprocessor(NUMERIC, CATEGORICAL)), ("model", model)]),
               tmp_path / "b", "catboost")  # fmt: skip
    # CatBoost's own binary model (the bytes of save_model(format="cbm")), a skops byte string
    assert any(f.startswith(b"CBM1") for f in native_state(tmp_path / "b"))


def test_catboost_with_its_own_categorical_handling_round_trips(tmp_path: Path) -> None:
    """CatBoost encodes the string column itself (``cat_features``), on a pandas frame."""
    from catboost import CatBoostClassifier

    fill = SimpleImputer(strategy="constant", fill_value="missing")
    prep = ColumnTransformer(
        [("cat", fill, CATEGORICAL)], remainder="passthrough", verbose_feature_names_out=False
    ).set_output(transform="pandas")
    model = CatBoostClassifier(
        iterations=20, depth=3, verbose=0, random_seed=0, thread_count=1,
        allow_writing_files=False, cat_features=CATEGORICAL,
    )  # fmt: skip
    round_trip(Pipeline([("prep", prep), ("model", model)]), tmp_path / "b", "catboost")


def _category_encoders() -> list[str]:
    import category_encoders

    return sorted(category_encoders.__all__)


ENCODER_ARGS: dict[str, dict[str, Any]] = {"HashingEncoder": {"max_process": 1, "n_components": 4}}
"""HashingEncoder forks worker processes by default: one process keeps the test small."""


SAMPLE_ENCODERS = (
    "HashingEncoder",
    "OneHotEncoder",
    "OrdinalEncoder",
    "TargetEncoder",
    "WOEEncoder",
)
"""``make test``'s encoders: one-hot, ordinal, target and WOE mappings (the read_csv test
below fits these four too) and the hashing one, which forks; ``make soak`` tries all."""


@pytest.mark.parametrize(
    "name",
    [
        n if n in SAMPLE_ENCODERS else pytest.param(n, marks=pytest.mark.soak)
        for n in _category_encoders()
    ],
)
def test_each_category_encoder_round_trips(name: str, tmp_path: Path) -> None:
    """Refused before with a raw ``TypeError: no default __reduce__`` (pandas mappings)."""
    import category_encoders

    encoder = getattr(category_encoders, name)(cols=CATEGORICAL, **ENCODER_ARGS.get(name, {}))
    pipeline = Pipeline(
        [("encode", encoder), ("impute", SimpleImputer()), ("scale", StandardScaler()),
         ("model", LogisticRegression())]
    )  # fmt: skip
    round_trip(pipeline, tmp_path / "b", "category_encoders")


@pytest.mark.parametrize("name", ["TargetEncoder", "OrdinalEncoder", "OneHotEncoder", "WOEEncoder"])
def test_category_encoders_fitted_on_a_read_csv_frame_round_trip(name: str, tmp_path: Path) -> None:
    """pandas 3 reads the string column as its Arrow-backed ``str`` dtype: the encoder's
    fitted mapping holds it, and it must come back (in the worker, without pyarrow too)."""
    import category_encoders

    FRAME.to_csv(tmp_path / "train.csv", index=False)
    frame = pd.read_csv(tmp_path / "train.csv")
    assert str(frame["colour"].dtype) == "str"
    pipeline = Pipeline(
        [("encode", getattr(category_encoders, name)(cols=CATEGORICAL)),
         ("impute", SimpleImputer()), ("model", LogisticRegression())]
    )  # fmt: skip
    round_trip(pipeline, tmp_path / "b", "category_encoders", frame)


def _feature_engine_steps() -> dict[str, Callable[[], list[tuple[str, Any]]]]:
    from feature_engine import discretisation, encoding, outliers, transformation
    from feature_engine.imputation import AddMissingIndicator, CategoricalImputer, MeanMedianImputer

    def imputed(*steps: tuple[str, Any]) -> list[tuple[str, Any]]:
        return [
            ("indicate", AddMissingIndicator(variables=NUMERIC)),
            ("numbers", MeanMedianImputer(variables=NUMERIC)),
            ("categories", CategoricalImputer(variables=CATEGORICAL)),
            *steps,
        ]

    one_hot = ("onehot", encoding.OneHotEncoder(variables=CATEGORICAL))
    return {
        "OneHotEncoder+Winsorizer": lambda: imputed(
            one_hot, ("caps", outliers.Winsorizer(variables=NUMERIC, fold=2))
        ),
        "RareLabel+OrdinalEncoder": lambda: imputed(
            ("rare", encoding.RareLabelEncoder(variables=CATEGORICAL, n_categories=2)),
            ("ordinal", encoding.OrdinalEncoder(variables=CATEGORICAL)),
        ),
        "MeanEncoder": lambda: imputed(("mean", encoding.MeanEncoder(variables=CATEGORICAL))),
        "CountFrequencyEncoder": lambda: imputed(
            ("count", encoding.CountFrequencyEncoder(variables=CATEGORICAL))
        ),
        "WoEEncoder": lambda: imputed(("woe", encoding.WoEEncoder(variables=CATEGORICAL))),
        "EqualFrequencyDiscretiser+YeoJohnson": lambda: imputed(
            one_hot,
            ("yeo", transformation.YeoJohnsonTransformer(variables=["c"])),
            ("bins", discretisation.EqualFrequencyDiscretiser(variables=["a", "b"], q=4)),
        ),
    }


@pytest.mark.parametrize("name", sorted(_feature_engine_steps()))
def test_feature_engine_round_trips(name: str, tmp_path: Path) -> None:
    steps = _feature_engine_steps()[name]()
    pipeline = Pipeline([*steps, ("scale", StandardScaler()), ("model", LogisticRegression())])
    round_trip(pipeline, tmp_path / "b", "feature_engine")


@pytest.mark.parametrize("sampler", ["SMOTE", "RandomUnderSampler", "RandomOverSampler"])
def test_imbalanced_learn_pipeline_round_trips(sampler: str, tmp_path: Path) -> None:
    """Samplers act at fit only; the bundle scores through the rest of the pipeline."""
    from imblearn import over_sampling, under_sampling
    from imblearn.pipeline import Pipeline as ImbPipeline

    module = over_sampling if hasattr(over_sampling, sampler) else under_sampling
    pipeline = ImbPipeline(
        [("prep", make_preprocessor(NUMERIC, CATEGORICAL)),
         ("sample", getattr(module, sampler)(random_state=0)),
         ("model", LogisticRegression())]
    )  # fmt: skip
    round_trip(pipeline, tmp_path / "b", "imblearn")


def test_scikit_learn_set_output_pandas_round_trips(tmp_path: Path) -> None:
    """Pure scikit-learn: no package to trust, the catalogue covers it."""
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categories = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    prep = ColumnTransformer([("num", numbers, NUMERIC), ("cat", categories, CATEGORICAL)])
    pipeline = Pipeline([("prep", prep), ("model", LogisticRegression())])
    round_trip(pipeline.set_output(transform="pandas"), tmp_path / "b", None)


def test_a_step_whose_state_cannot_be_saved_is_one_line_naming_it(tmp_path: Path) -> None:
    from feature_engine.imputation import MeanMedianImputer

    imputer = MeanMedianImputer(variables=NUMERIC)
    pipeline = Pipeline(
        [("prep", make_preprocessor(NUMERIC, CATEGORICAL)), ("model", LogisticRegression())]
    ).fit(FRAME[FEATURES], FRAME["y"])
    broken = Pipeline([("impute", imputer.fit(FRAME[FEATURES])), *pipeline.steps])
    # a library keeping a categorical Series in its fitted state: no exact skops form
    imputer.cache_ = pd.Series(["a", "b"], dtype="category")
    with pytest.raises(BadInputError) as refused:
        build_bundle(broken, FRAME, tmp_path / "b", name="x", version="1", target="y",
                     numeric=NUMERIC, categorical=CATEGORICAL)  # fmt: skip
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("step 'impute' (feature_engine.imputation.mean_median.")
    assert "feature_engine 1." in message and "replace the step" in message
    assert not (tmp_path / "b").exists()


def test_a_step_holding_a_type_no_option_can_trust_is_one_line_naming_it(tmp_path: Path) -> None:
    """A library keeping a standard-library object (here a Counter) in its fitted state."""
    from collections import Counter

    from feature_engine.imputation import MeanMedianImputer

    imputer = MeanMedianImputer(variables=NUMERIC).fit(FRAME[FEATURES])
    imputer.seen_ = Counter(["a", "b"])
    pipeline = Pipeline(
        [("impute", imputer), ("prep", make_preprocessor(NUMERIC, CATEGORICAL)),
         ("model", LogisticRegression())]
    ).fit(FRAME[FEATURES], FRAME["y"])  # fmt: skip
    with pytest.raises(BadInputError) as refused:
        build_bundle(pipeline, FRAME, tmp_path / "b", name="x", version="1", target="y",
                     numeric=NUMERIC, categorical=CATEGORICAL)  # fmt: skip
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("step 'impute' (feature_engine.imputation.mean_median.")
    assert "holds collections.Counter" in message and "can never be trusted" in message
    assert not (tmp_path / "b").exists()
