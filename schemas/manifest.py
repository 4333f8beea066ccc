"""The bundle manifest: what a bundle promises about itself.

Everything here except ``digest`` and ``build`` is covered by the bundle
digest, so two builds from the same config and data compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictInt,
    model_serializer,
)

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


CANONICAL_FORMS = frozenset({("numeric", "float64"), ("categorical", "object")})
"""The (kind, dtype) pairs served in canonical form. A categorical feature fitted as
float64 (an integer code ``pd.read_csv`` gave NaN gaps) keeps its fitted dtype: its
encoder was fitted on 3.0, never on the text "3"."""

DTYPE_PATTERN = (
    r"^(float64|object|u?int(8|16|32|64)|U?Int(8|16|32|64)|float32|Float(32|64)|bool|boolean"
    r"|str|string|category|datetime64\[(s|ms|us|ns)(, [^\]]+)?\])$"
)
"""The pandas dtypes a model input column may have (``str(dtype)``, as pandas prints it)."""


class CategoryDtypeSpec(_Frozen):
    """A pandas ``category`` dtype exactly as fitted: its categories with their JSON types."""

    categories: list[Label] = Field(description="the dtype's categories, in order")
    ordered: bool


class FeatureSpec(_Frozen):
    """One model input, in the order the pipeline expects it."""

    name: str
    kind: FeatureKind
    dtype: str = Field(
        pattern=DTYPE_PATTERN,
        description="dtype of the column in the model input frame: float64/object in the "
        "canonical form of a config build, else the pandas dtype the pipeline was fitted on "
        "(int64, Int64, bool, boolean, str, category, datetime64[us, UTC]...)",
    )
    nullable: bool = Field(description="a null value is imputed rather than rejected")
    categories: list[str] | None = Field(
        default=None, description="categories seen in training (categorical only)"
    )
    category_dtype: CategoryDtypeSpec | None = Field(
        default=None, description="the categories and order of a pandas category dtype"
    )

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A feature without a category dtype serializes as before the field existed, so
        # the digests of bundles that have none do not change.
        dumped: dict[str, Any] = handler(self)
        if dumped.get("category_dtype", 0) is None:
            del dumped["category_dtype"]
        return dumped

    @property
    def canonical(self) -> bool:
        """Served in the canonical form of ``model_bundles.values`` (config builds)."""
        return (self.kind, self.dtype) in CANONICAL_FORMS


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
    build: dict[str, StrictInt | str] = Field(
        default_factory=dict,
        description="provenance outside the digest: created_at and host (text), proved_rows "
        "(an integer: training rows the build proved through the serving path)",
    )


DIGEST_EXCLUDED = frozenset({"digest", "build"})
