"""The worked example of docs/bundle.md: a notebook's pipeline to a served bundle.

    python -m examples.custom_features.pipeline --out out/custom-features

fits a pipeline of a feature-engine step, the team's own ``penguin_features``
module and scikit-learn, then builds a bundle with ``code=[penguin_features]``
and prints the options every command that loads it needs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from model_bundles.build import build_bundle
from model_bundles.estimators import make_preprocessor
from schemas.manifest import Manifest

HERE = Path(__file__).resolve().parent
PENGUINS_CSV = HERE.parent / "penguins" / "penguins.csv"
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
DERIVED = ["bill_ratio", "bill_area"]

if str(HERE) not in sys.path:  # a notebook's directory is on sys.path: the module is top-level
    sys.path.insert(0, str(HERE))
import penguin_features  # noqa: E402


def load_penguins() -> pd.DataFrame:
    """The labelled rows; categorical columns as text, missing values as NaN."""
    frame = pd.read_csv(PENGUINS_CSV, dtype={"island": object, "sex": object})
    return frame[frame["species"].notna()].reset_index(drop=True)


def make_pipeline() -> Pipeline:
    from feature_engine.imputation import CategoricalImputer, MeanMedianImputer

    steps: list[tuple[str, Any]] = [
        ("shape", penguin_features.BillShape()),
        ("initial", FunctionTransformer(penguin_features.first_letter)),
        ("impute_numbers", MeanMedianImputer(variables=[*NUMERIC, *DERIVED])),
        ("impute_categories", CategoricalImputer(variables=CATEGORICAL, fill_value="unknown")),
        ("encode", make_preprocessor([*NUMERIC, *DERIVED], CATEGORICAL)),
        ("model", RandomForestClassifier(n_estimators=60, random_state=7, n_jobs=2)),
    ]
    return Pipeline(steps)


def build(out: Path) -> tuple[Pipeline, Manifest]:
    """Fit on 80 % of the rows (stratified, seeded), hold out the rest, build the bundle."""
    frame = load_penguins()
    train, holdout = train_test_split(
        frame, test_size=0.2, random_state=42, stratify=frame["species"]
    )
    pipeline = make_pipeline().fit(train[[*NUMERIC, *CATEGORICAL]], train["species"])
    manifest = build_bundle(
        pipeline,
        train,
        out,
        holdout=holdout,
        name="penguins-custom-features",
        version="1.0.0",
        target="species",
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        id_column="event_id",
        code=[penguin_features],
        data=frame,
        data_source=PENGUINS_CSV.name,
    )
    return pipeline, manifest


def trust_options(manifest: Manifest) -> list[str]:
    """The options every command that loads the bundle needs (SPEC "Trust")."""
    options = [f"--trust-package={name}" for name in sorted(manifest.trust.packages)]
    if manifest.trust.code is not None:
        options.append(f"--trust-code={manifest.trust.code.digest}")
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/custom-features"))
    args = parser.parse_args()
    _, manifest = build(args.out)
    print(f"built {manifest.name} {manifest.version} {manifest.digest} -> {args.out}")
    print("load it with: " + " ".join(trust_options(manifest)))


if __name__ == "__main__":
    main()
