"""The training config (TOML) of SPEC.md, validated."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.errors import BadInputError
from schemas.manifest import Task


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BundleSection(_Section):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)


class DataSection(_Section):
    target: str
    id_column: str | None = None
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    split_seed: int = 42
    na_values: list[str] = Field(
        default_factory=list,
        description="data fields that mean missing, besides the empty field",
    )


class FeaturesSection(_Section):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> FeaturesSection:
        names = [*self.numeric, *self.categorical]
        if not names:
            raise ValueError("no features: list some under numeric or categorical")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"a feature is listed twice: {', '.join(twice)}")
        return self


class ModelSection(_Section):
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    task: Task | None = Field(
        default=None, description="inferred from the target's dtype when not given"
    )


class TrainingConfig(_Section):
    bundle: BundleSection
    data: DataSection
    features: FeaturesSection
    model: ModelSection


def load_config(path: Path) -> TrainingConfig:
    """Read and validate a training config; any problem is one BadInputError line."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read config {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"config {path} is not valid TOML: {exc}") from None
    try:
        return TrainingConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise BadInputError(f"config {path}: {where}: {first['msg']}") from None
