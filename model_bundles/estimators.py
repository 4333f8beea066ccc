"""Estimators a training config can name, and the preprocessing SPEC.md fixes."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils import all_estimators

from schemas.errors import BadInputError
from schemas.manifest import Task

Factory = Callable[..., Any]

# name -> (classifier, regressor); None where the task makes no sense for it.
ESTIMATORS: dict[str, tuple[Factory | None, Factory | None]] = {
    "logistic_regression": (LogisticRegression, None),
    "random_forest": (RandomForestClassifier, RandomForestRegressor),
    "extra_trees": (ExtraTreesClassifier, ExtraTreesRegressor),
    "decision_tree": (DecisionTreeClassifier, DecisionTreeRegressor),
    "hist_gradient_boosting": (HistGradientBoostingClassifier, HistGradientBoostingRegressor),
    "gradient_boosting": (GradientBoostingClassifier, GradientBoostingRegressor),
    "ridge": (None, Ridge),
    "linear_regression": (None, LinearRegression),
    "lasso": (None, Lasso),
    "elastic_net": (None, ElasticNet),
}


def make_estimator(name: str, task: Task, params: dict[str, Any], seed: int | None) -> Any:
    """Instantiate a named estimator; the seed goes to ``random_state`` where it exists.

    ``name`` is a short name of ``ESTIMATORS`` or a scikit-learn catalogue class name,
    bare (``SVC``) or with its public module (``sklearn.svm.SVC``).
    """
    factory = ESTIMATORS[name][0 if task == "classification" else 1] if name in ESTIMATORS else None
    if name not in ESTIMATORS:
        factory = catalogue_class(name)
        if not _fits_task(factory, task):
            raise BadInputError(f"estimator {name!r} is not a scikit-learn {_ROLE[task]}")
    if factory is None:
        raise BadInputError(f"estimator {name!r} does not support {task}")
    try:
        estimator = factory(**params)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"bad params for {name}: {exc}") from None
    if seed is not None and "random_state" in estimator.get_params():
        estimator.set_params(random_state=seed)
    return estimator


_ROLE = {"classification": "classifier", "regression": "regressor"}


def catalogue_class(name: str) -> Factory:
    """The class of scikit-learn's catalogue called ``name`` (``SVC`` or ``sklearn.svm.SVC``)."""
    module, _, bare = name.rpartition(".")
    for class_name, cls in all_estimators():
        if class_name != bare:
            continue
        if not module or _exported_by(module, class_name, cls):
            return cast(Factory, cls)
    short = ", ".join(sorted(ESTIMATORS))
    raise BadInputError(
        f"unknown estimator {name!r} (short names: {short}; or any scikit-learn estimator "
        "class name, e.g. SVC or sklearn.svm.SVC)"
    )


def _exported_by(module: str, class_name: str, cls: type[Any]) -> bool:
    if not module.startswith("sklearn"):
        return False
    try:
        return getattr(importlib.import_module(module), class_name, None) is cls
    except ImportError:
        return False


def _fits_task(cls: Factory, task: Task) -> bool:
    return any(found is cls for _, found in all_estimators(type_filter=_ROLE[task]))


def make_preprocessor(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Numeric: median imputation + scaling; categorical: most-frequent + one-hot.

    Unknown categories are ignored by the encoder (all zeros), as SPEC.md fixes.
    """
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        numeric_steps = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        transformers.append(("numeric", numeric_steps, numeric))
    if categorical:
        categorical_steps = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical_steps, categorical))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def make_pipeline(numeric: list[str], categorical: list[str], estimator: Any) -> Pipeline:
    return Pipeline([("preprocess", make_preprocessor(numeric, categorical)), ("model", estimator)])
