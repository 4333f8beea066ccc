"""The bundle manifest: what a bundle promises about itself.

Everything here except ``digest`` and ``build`` is covered by the bundle
digest, so two builds from the same config and data compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1
"""Bumped on any incompatible change of the bundle layout; loaders refuse newer ones."""

Task = Literal["classification", "regression"]
FeatureKind = Literal["numeric", "categorical"]
Label = str | int | float | bool


_INTEGER_TEXT = re.compile(r"0|-?[1-9][0-9]*")


def is_integer_text(text: str) -> bool:
    """Text an integer prints as (``"7"``, ``"-12"``; not ``"07"``, ``"+7"`` or ``"7.0"``)."""
    return _INTEGER_TEXT.fullmatch(text) is not None


def category_event_types(categories: Iterable[str]) -> frozenset[type]:
    """JSON types an event may give a categorical feature with these training categories.

    Always a string; an integer when some category is integer text; a boolean when
    ``"True"`` or ``"False"`` is one (the canonical text of ``model_bundles.values``).
    """
    texts = list(categories)
    types: set[type] = {str}
    if any(map(is_integer_text, texts)):
        types.add(int)
    if not {"True", "False"}.isdisjoint(texts):
        types.add(bool)
    return frozenset(types)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureSpec(_Frozen):
    """One model input, in the order the pipeline expects it."""

    name: str
    kind: FeatureKind
    dtype: Literal["float64", "object"] = Field(
        description="dtype of the column in the model input frame"
    )
    nullable: bool = Field(description="a null value is imputed rather than rejected")
    categories: list[str] | None = Field(
        default=None, description="categories seen in training (categorical only)"
    )


class EstimatorSpec(_Frozen):
    """The final estimator and every hyperparameter, as ``get_params`` reports them."""

    name: str = Field(description="config name, e.g. logistic_regression, or 'custom'")
    class_path: str = Field(description="import path of the estimator class")
    params: dict[str, Any]
    pipeline_params: dict[str, Any] = Field(
        description="the whole pipeline's get_params(deep=True); nested estimators by class path"
    )


class DataFingerprint(_Frozen):
    """Identifies the training data without shipping it."""

    sha256: str = Field(description="sha256 of the canonical JSON-lines form of the data")
    rows: int
    columns: int
    source: str = Field(description="file name the data came from, or 'dataframe'")
    train_rows: int
    holdout_rows: int


class CodeSpec(_Frozen):
    """The user's own modules packed under ``code/`` (SPEC "Trust")."""

    digest: str = Field(
        description="sha256:<hex> over the code files' names and digests: what --trust-code names"
    )
    modules: list[str] = Field(description="top-level module names the code provides")


class TrustSpec(_Frozen):
    """What the model file needs beyond the scikit-learn catalogue; never trusted by itself."""

    packages: dict[str, str] = Field(
        default_factory=dict,
        description="third-party import name -> exact version at build, compared at load",
    )
    code: CodeSpec | None = None


class Manifest(_Frozen):
    """manifest.json of a bundle directory."""

    format_version: int
    name: str
    version: str
    task: Task
    target: str
    id_column: str | None = None
    classes: list[Label] | None = None
    features: list[FeatureSpec]
    estimator: EstimatorSpec
    seeds: dict[str, int | None]
    data: DataFingerprint
    versions: dict[str, str]
    metrics: dict[str, float]
    trust: TrustSpec = Field(default_factory=TrustSpec)
    decision: bool = Field(
        default=False,
        description="a classifier without predict_proba: records carry its decision function",
    )
    scoring_params: dict[str, Any] = Field(
        default_factory=dict,
        description="parameters set for bit-reproducible scoring, e.g. "
        '{"model__n_jobs": {"fitted": 8, "scoring": 1}}',
    )
    files: dict[str, str] = Field(description="file name -> sha256:<hex> of its bytes")
    digest: str = Field(description="sha256:<hex> over everything above")
    build: dict[str, str] = Field(
        default_factory=dict,
        description="provenance outside the digest (creation time, host)",
    )

    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


DIGEST_EXCLUDED = frozenset({"digest", "build"})
