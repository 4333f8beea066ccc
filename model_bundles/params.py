"""Hyperparameters as JSON that is the same on every run (no memory addresses)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def params_of(estimator: Any, deep: bool) -> dict[str, Any]:
    return {k: json_safe(v) for k, v in sorted(estimator.get_params(deep=deep).items())}


def json_safe(value: Any) -> Any:
    """Plain JSON values; objects become their class path (a repr could hold an address)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    kind = type(value)
    return {"class": f"{kind.__module__}.{kind.__qualname__}"}
