"""Every estimator of scikit-learn's catalogue, fitted on one small table.

The reviewed type list is generated from what these fitted pipelines hold
(``python -m tools.trust.generate``), and the catalogue coverage test
builds, loads and re-scores a bundle of each. Estimators that cannot take a
plain tabular target are excluded here, each with its reason.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils import all_estimators

from model_bundles.estimators import make_preprocessor

Role = Literal["classifier", "regressor", "transformer"]
ROLES: tuple[Role, ...] = ("classifier", "regressor", "transformer")

NUMERIC = ["a", "b", "c"]
CATEGORICAL = ["colour"]

EXCLUDED: dict[str, str] = {
    "ColumnTransformer": "a composition tool: needs its transformers as arguments",
    "FeatureUnion": "a composition tool: needs its transformers as arguments",
    "SparseCoder": "needs a fitted dictionary as an argument",
    "TunedThresholdClassifierCV": "cross-validates a threshold; too few rows per fold here",
    "FeatureHasher": "text/dict input only",
    "DictVectorizer": "dict input only",
    "HashingVectorizer": "text input only",
    "CountVectorizer": "text input only",
    "TfidfVectorizer": "text input only",
    "TfidfTransformer": "count-matrix input (text pipelines)",
    "LabelBinarizer": "transforms targets, not features",
    "LabelEncoder": "transforms targets, not features",
    "MultiLabelBinarizer": "transforms targets, not features",
    "IsotonicRegression": "one feature only",
    "MultiOutputClassifier": "multi-output targets only",
    "MultiOutputRegressor": "multi-output targets only",
    "ClassifierChain": "multi-output targets only",
    "RegressorChain": "multi-output targets only",
    "MultiTaskElasticNet": "multi-output targets only",
    "MultiTaskElasticNetCV": "multi-output targets only",
    "MultiTaskLasso": "multi-output targets only",
    "MultiTaskLassoCV": "multi-output targets only",
}
"""Catalogue entries not tried, by class name, with the reason (docs/catalogue.md)."""


@dataclass(frozen=True)
class Candidate:
    """One catalogue estimator in the pipeline the probe fits."""

    name: str
    role: Role
    estimator_class: type[Any]

    @property
    def task(self) -> Literal["classification", "regression"]:
        return "regression" if self.role == "regressor" else "classification"


def candidates() -> Iterator[Candidate]:
    """Each class of ``all_estimators`` once, in its first role, minus ``EXCLUDED``."""
    seen: set[str] = set()
    for role in ROLES:
        for name, cls in all_estimators(type_filter=role):
            if name not in seen and name not in EXCLUDED:
                seen.add(name)
                yield Candidate(name, role, cls)


def table(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    """Three numeric columns and one categorical, each with missing values, and two targets."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    frame = pd.DataFrame(
        {
            "a": a,
            "b": b * 3.0 + 10.0,
            "c": rng.uniform(0.0, 5.0, size=rows),
            "colour": rng.choice(np.array(["red", "green", "blue"], dtype=object), size=rows),
            "label": np.where(a + 0.5 * b > 0, "yes", "no").astype(object),
            "value": 2.0 * a - b + rng.normal(scale=0.1, size=rows),
        }
    )
    for column, every in (("a", 7), ("c", 11), ("colour", 9)):
        frame.loc[frame.index % every == 3, column] = None
    return frame


def instance(candidate: Candidate) -> BaseEstimator:
    """The estimator with its required arguments (a simple base model where one is needed)."""
    base: Any = LogisticRegression() if candidate.task == "classification" else LinearRegression()
    kwargs: dict[str, Any] = {}
    for param in _required_params(candidate.estimator_class):
        if param == "estimator":
            kwargs[param] = base
        elif param == "estimators":
            kwargs[param] = [("first", base), ("second", type(base)(fit_intercept=False))]
        else:
            raise TypeError(f"no probe value for required parameter {param!r}")
    estimator = candidate.estimator_class(**kwargs)
    params = estimator.get_params(deep=False)
    settings: dict[str, Any] = {k: 0 for k in ("random_state",) if k in params}
    if "estimator" in params and params["estimator"] is None:  # e.g. SelfTrainingClassifier
        settings["estimator"] = base
    return estimator.set_params(**settings)


def pipeline(candidate: Candidate) -> Pipeline:
    """Preprocessing (SPEC's imputer/scaler/one-hot), the estimator, and for a transformer
    a logistic regression after it."""
    steps: list[tuple[str, Any]] = [
        ("preprocess", make_preprocessor(NUMERIC, CATEGORICAL)),
        ("model", instance(candidate)),
    ]
    if candidate.role == "transformer":
        steps.append(("final", LogisticRegression()))
    return Pipeline(steps)


def fit(candidate: Candidate, frame: pd.DataFrame) -> Pipeline:
    """Fit the candidate's pipeline on ``frame`` (warnings silenced; failures raise)."""
    target = "value" if candidate.task == "regression" else "label"
    fitted = pipeline(candidate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted.fit(frame[[*NUMERIC, *CATEGORICAL]], frame[target])
    return fitted


def _required_params(cls: type[Any]) -> list[str]:
    parameters = inspect.signature(cls.__init__).parameters.values()
    return [
        p.name
        for p in parameters
        if p.name != "self"
        and p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
