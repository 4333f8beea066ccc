"""Helpers for the training-data tests: configs, files and the in-memory reference pipeline.

The reference is what a user would write with scikit-learn alone: the table's
values as written, the config's split and preprocessing, fitted in memory. A
bundle built from a file of that table must score every row exactly like it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from model_bundles.config import TrainingConfig, load_config
from model_bundles.estimators import make_estimator, make_pipeline
from model_bundles.predict import Outputs, predict_outputs


def write_config(
    path: Path,
    *,
    target: str,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    estimator: str = "logistic_regression",
    extra_data: str = "",
    extra_model: str = "",
) -> Path:
    """A training config (TOML) with the given columns; returns its path."""
    path.write_text(
        "[bundle]\nname = 't'\nversion = '1'\n"
        f"[data]\ntarget = {target!r}\ntest_size = 0.25\nsplit_seed = 3\n{extra_data}\n"
        f"[features]\nnumeric = {list(numeric)!r}\ncategorical = {list(categorical)!r}\n"
        f"[model]\nestimator = {estimator!r}\nseed = 5\n{extra_model}\n"
    )
    return path


def fit_in_memory(frame: pd.DataFrame, config_path: Path) -> Any:
    """The config's pipeline fitted with scikit-learn on ``frame`` as it is.

    ``frame`` holds the model's values (float64 numbers, text or NaN categories,
    labels of their own type); the split is the config's ``train_test_split``.
    """
    config = load_config(config_path)
    target, features = config.data.target, _features(config)
    labelled = frame[frame[target].notna()].reset_index(drop=True)
    labels = labelled[target].to_numpy()
    stratify = labels if labelled[target].value_counts().min() >= 2 else None
    train, _ = train_test_split(
        labelled,
        test_size=config.data.test_size,
        random_state=config.data.split_seed,
        stratify=stratify,
    )
    estimator = make_estimator(
        config.model.estimator, "classification", config.model.params, config.model.seed
    )
    pipeline = make_pipeline(config.features.numeric, config.features.categorical, estimator)
    pipeline.fit(train[features], train[target].to_numpy())
    return pipeline


def score_in_memory(pipeline: Any, frame: pd.DataFrame, config_path: Path) -> Outputs:
    """The in-memory pipeline's outputs for ``frame`` (rows scored in one call, padded
    to whole blocks as every scoring path is, so the bits are comparable)."""
    features = _features(load_config(config_path))
    model_input = frame[features].reset_index(drop=True)
    return predict_outputs(pipeline, model_input, "classification")


def _features(config: TrainingConfig) -> list[str]:
    return [*config.features.numeric, *config.features.categorical]


def text_column(values: Sequence[Any]) -> pd.Series:
    """Categorical values as the model sees them: text, NaN for missing."""
    column = np.empty(len(values), dtype=object)
    column[:] = [np.nan if v is None else v for v in values]
    return pd.Series(column, dtype=object)
