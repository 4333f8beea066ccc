"""A bundle whose model fails on some events: the tests of issue 26 (model errors).

The pipeline is a trusted user transformer (``Hooks``), then scikit-learn's default
``OneHotEncoder(handle_unknown="error")`` on ``colour``, then a logistic regression:

- a ``colour`` never seen in training (``"Atlantis"``) makes the encoder raise
  ``ValueError: Found unknown categories ['Atlantis'] ...`` (a team keeping the default);
- ``a >= RAISE_AT`` makes ``Hooks`` raise ``ValueError`` naming the value;
- ``b >= BLOCK_AT`` makes ``Hooks`` block for good (a feature-service call without a
  timeout);
- with ``GATE_ENV`` naming a file, a model call whose first row is ``"Atlantis"`` (the
  bisection's second call on ``[valid, Atlantis, valid]``) writes that file and blocks,
  so a test can kill the worker in the middle of isolating a batch.
"""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from model_bundles.build import build_bundle
from tools.trust import probe

RAISE_AT = 1000.0
BLOCK_AT = 1000.0
UNKNOWN = "Atlantis"
GATE_ENV = "SCORING_TEST_MODEL_GATE"

HOOKS_MODULE = textwrap.dedent(
    '''
    """Test hooks of issue 26: raise, block, or stop at a gate (model_error_fixtures)."""
    import os
    import threading
    from pathlib import Path

    import numpy as np
    from sklearn.base import BaseEstimator, TransformerMixin


    class Hooks(BaseEstimator, TransformerMixin):
        def __init__(self, raise_at={raise_at!r}, block_at={block_at!r}):
            self.raise_at = raise_at
            self.block_at = block_at

        def fit(self, X, y=None):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
            return self

        def transform(self, X):
            high = X["a"][X["a"] >= self.raise_at]
            if len(high):
                raise ValueError(f"a is {{high.iloc[0]!r}}, beyond {{self.raise_at}}\\nsecond line")
            if (X["b"] >= self.block_at).any():
                threading.Event().wait()
            gate = os.environ.get("{gate}")
            if gate and len(X) and X["colour"].iloc[0] == "{unknown}":
                Path(gate).write_text("in the model call")
                threading.Event().wait()
            return X
    '''
).format(raise_at=RAISE_AT, block_at=BLOCK_AT, gate=GATE_ENV, unknown=UNKNOWN)

_names = itertools.count()


def build_model_error_bundle(
    directory: Path, raise_at: float = RAISE_AT, version: str = "1", block_at: float = BLOCK_AT
) -> tuple[Path, str]:
    """Build the bundle under ``directory``; (bundle path, its ``--trust-code`` digest).
    ``raise_at``/``block_at``/``version``: another bundle of the same task and labels
    whose ``Hooks`` raise (block) on lower values of ``a`` (``b``): a challenger that
    fails or hangs where the champion scores."""
    name = f"model_error_hooks_{next(_names)}"
    source = directory / "code"
    source.mkdir(parents=True, exist_ok=True)
    (source / f"{name}.py").write_text(HOOKS_MODULE)
    sys.path.insert(0, str(source))
    try:
        module = __import__(name)
    finally:
        sys.path.remove(str(source))
    frame = probe.table(rows=80, seed=3)
    features = [*probe.NUMERIC, *probe.CATEGORICAL]
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(sparse_output=False)),  # handle_unknown="error"
        ]
    )
    steps: list[tuple[str, Any]] = [
        ("hooks", module.Hooks(raise_at=raise_at, block_at=block_at)),
        (
            "preprocess",
            ColumnTransformer(
                [("numeric", numeric, probe.NUMERIC), ("categorical", categorical, ["colour"])],
                verbose_feature_names_out=False,
            ),
        ),
        ("model", LogisticRegression()),
    ]
    pipeline = Pipeline(steps).fit(frame[features], frame["label"])
    out = directory / "bundle"
    manifest = build_bundle(
        pipeline,
        frame.head(60),
        out,
        holdout=frame.tail(20),
        name="model-errors",
        version=version,
        target="label",
        numeric=probe.NUMERIC,
        categorical=probe.CATEGORICAL,
        code=[module],
    )
    assert manifest.trust.code is not None
    return out, manifest.trust.code.digest


def event(a: float = 0.5, b: float = 10.0, c: float = 2.0, colour: str = "red") -> dict[str, Any]:
    """One event of the bundle's features."""
    return {"a": a, "b": b, "c": c, "colour": colour}


def frame_of(events: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(events)
