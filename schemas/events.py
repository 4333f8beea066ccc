"""The input event of a bundle, as a pydantic model derived from its feature list.

The worker validates events with ``model_bundles.events.check_event`` (it must
name SPEC's reject reason, and it is on the hot path); this model is the same
contract for documentation, JSON Schema export and producers that want to
validate before sending. A test keeps the two in agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
)

from schemas.manifest import FeatureSpec, category_event_types


class _EventBase(BaseModel):
    # Extra fields are allowed and ignored by the model, as SPEC.md says.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


def _fits_float64(value: int) -> int:
    try:
        float(value)  # past float64's range the model could never take it
    except OverflowError:
        raise ValueError("integer out of float64 range") from None
    return value


NumericInt = Annotated[StrictInt, AfterValidator(_fits_float64)]
"""A JSON integer the model can take as a float64 (``check_event``: non_finite otherwise)."""


def event_model(
    features: Sequence[FeatureSpec], id_field: str = "event_id", name: str = "Event"
) -> type[BaseModel]:
    """A model whose fields are the bundle's features (every key required, null only if imputed)."""
    fields: dict[str, Any] = {
        id_field: (StrictStr | StrictInt | None, Field(default=None, description="event id")),
    }
    for feature in features:
        kind: Any = StrictFloat | NumericInt
        if not feature.canonical:
            kind = _fitted_kind(feature)
        elif feature.kind == "categorical":
            allowed = category_event_types(feature.categories or ())
            kind = StrictStr
            kind = kind | StrictInt if int in allowed else kind
            kind = kind | StrictBool if bool in allowed else kind
        if feature.nullable:
            kind = kind | None
        description = f"{feature.kind} feature ({feature.dtype})"
        if feature.categories:
            description += f"; categories seen in training: {', '.join(feature.categories)}"
        fields[feature.name] = (kind, Field(..., description=description))
    model: type[BaseModel] = create_model(name, __base__=_EventBase, **fields)
    return model


_DATETIME_TEXT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$"
)


def _fitted_kind(feature: FeatureSpec) -> Any:
    """The JSON type of a feature with a fitted dtype (``model_bundles.dtypes``' rules; that
    a datetime text is a real date within the column's unit is the worker's check)."""
    dtype = feature.dtype
    if dtype == "category" and feature.category_dtype is not None:
        categories = tuple(feature.category_dtype.categories)
        types = {type(c) for c in categories}
        types = {int, float} if types == {float} else types

        def json_type(value: Any) -> Any:
            if value is not None and type(value) not in types:  # Literal[1] takes True
                raise ValueError("not of the categories' JSON type")
            return value

        return Annotated[Literal[categories], BeforeValidator(json_type)]
    if dtype.startswith("datetime64"):
        return Annotated[StrictStr, Field(pattern=_DATETIME_TEXT)]
    if dtype in ("bool", "boolean"):
        return StrictBool
    if dtype in ("str", "string"):
        return StrictStr
    if dtype.lower().startswith("float"):
        return StrictFloat | NumericInt
    bits = int(dtype.lstrip("uUiInt"))
    signed = dtype.lower().startswith("int")
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return Annotated[StrictInt, Field(ge=low, le=high)]
