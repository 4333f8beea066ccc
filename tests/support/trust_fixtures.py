"""Pipelines the trust tests build: a user's own transformer module, a feature-engine step."""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from model_bundles.build import build_bundle
from model_bundles.estimators import make_preprocessor
from schemas.manifest import Manifest
from tools.trust import probe

MARKER_ENV = "SCORING_WORKER_TEST_IMPORT_MARKER"

USER_MODULE = textwrap.dedent(
    '''
    """A user's feature code: clips outliers; importing it with the marker set leaves a file."""
    import os
    from pathlib import Path

    import numpy as np
    from sklearn.base import BaseEstimator, TransformerMixin

    if os.environ.get("{marker}"):
        Path(os.environ["{marker}"]).write_text(__name__)

    SCALE = 1.0


    class ClipOutliers(BaseEstimator, TransformerMixin):
        def __init__(self, columns=("a", "b"), quantile=0.9):
            self.columns = columns
            self.quantile = quantile

        def fit(self, X, y=None):
            self.limits_ = {{c: float(np.nanquantile(X[c], self.quantile)) for c in self.columns}}
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
            return self

        def transform(self, X):
            X = X.copy()
            for column, limit in self.limits_.items():
                X[column] = X[column].clip(upper=limit) * SCALE
            return X
    '''
).format(marker=MARKER_ENV)

_names = itertools.count()


def user_module(directory: Path) -> ModuleType:
    """Write and import a fresh user module (a new name each time, so tests never share it)."""
    name = f"user_features_{next(_names)}"
    (directory / f"{name}.py").write_text(USER_MODULE)
    sys.path.insert(0, str(directory))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(directory))


def features() -> list[str]:
    return [*probe.NUMERIC, *probe.CATEGORICAL]


def user_pipeline(module: ModuleType, frame: pd.DataFrame) -> Pipeline:
    steps: list[tuple[str, Any]] = [
        ("clip", module.ClipOutliers()),
        ("preprocess", make_preprocessor(probe.NUMERIC, probe.CATEGORICAL)),
        ("model", LogisticRegression()),
    ]
    return Pipeline(steps).fit(frame[features()], frame["label"])


def feature_engine_pipeline(frame: pd.DataFrame) -> Pipeline:
    from feature_engine.encoding import RareLabelEncoder
    from feature_engine.imputation import CategoricalImputer, MeanMedianImputer

    steps: list[tuple[str, Any]] = [
        ("impute_numbers", MeanMedianImputer(variables=probe.NUMERIC)),
        ("impute_categories", CategoricalImputer(variables=probe.CATEGORICAL)),
        ("rare", RareLabelEncoder(variables=probe.CATEGORICAL, n_categories=2, tol=0.05)),
        ("preprocess", make_preprocessor(probe.NUMERIC, probe.CATEGORICAL)),
        ("model", LogisticRegression()),
    ]
    return Pipeline(steps).fit(frame[features()], frame["label"])


def build(pipeline: Pipeline, frame: pd.DataFrame, out: Path, **extra: Any) -> Manifest:
    """A bundle of a pipeline fitted on ``probe.table()``; golden rows = the last 12 rows."""
    return build_bundle(
        pipeline,
        frame.head(48),
        out,
        holdout=frame.tail(12),
        name="trust-test",
        version="1",
        target="label",
        numeric=probe.NUMERIC,
        categorical=probe.CATEGORICAL,
        **extra,
    )
