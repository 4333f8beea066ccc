"""Which step of a fitted pipeline holds state that cannot be saved, in one actionable line.

skops raises from deep inside a library's objects (a pandas Cython type, a
ctypes handle, a lock...). The build must not show that traceback: it names the
innermost step whose own saving fails, the library it comes from with its
version, and what the team can do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import skops.io as sio

from model_bundles.trust.policy import root
from model_bundles.versions import package_versions

REASON_CHARS = 160


def unsaveable_step(pipeline: Any, error: BaseException) -> str:
    """The one-line refusal for a pipeline ``sio.dumps`` failed on with ``error``.

    Shape: ``step 'model' (lib.Class, lib 1.2.3) holds fitted state that cannot be
    saved without pickle (<reason>); <what to do>``.
    """
    path, culprit, reason = _innermost(pipeline, "the pipeline", error)
    return (
        f"{_describe(path, culprit)} holds fitted state that cannot be saved without "
        f"pickle ({reason}); replace the step with one that can (docs/catalogue.md lists "
        "the libraries that round trip), or keep its fitted values as numpy arrays/plain "
        "values in a transformer of your own module (build_bundle(..., code=[module]))"
    )


def untrustable_step(pipeline: Any, type_name: str) -> str:
    """The one-line refusal for a pipeline whose saved form holds ``type_name``, a type no
    option can trust (the standard library, numpy/scipy/sklearn outside the catalogue)."""
    path, holder = _holder(pipeline, "the pipeline", type_name)
    return (
        f"{_describe(path, holder)} holds {type_name}, which is not in the reviewed "
        "scikit-learn catalogue and can never be trusted (loading it could run code); "
        "replace the step, or keep its fitted values as numpy arrays/plain values"
    )


def _describe(path: str, obj: Any) -> str:
    """``step 'model' (lib.Class, lib 1.2.3)``."""
    cls = type(obj)
    library = root(cls.__module__)
    version = package_versions([library]).get(library) or "not an installed package"
    where = path if path == "the pipeline" else f"step {path!r}"
    return f"{where} ({cls.__module__}.{cls.__qualname__}, {library} {version})"


def _holder(obj: Any, path: str, type_name: str) -> tuple[str, Any]:
    """The innermost sub-estimator whose own saved form holds ``type_name``."""
    for name, child in _sub_estimators(obj):
        try:
            holds = type_name in sio.get_untrusted_types(data=sio.dumps(child))
        except Exception:
            continue
        if holds:
            return _holder(child, name if path == "the pipeline" else f"{path} > {name}", type_name)
    return path, obj


def _innermost(obj: Any, path: str, error: BaseException) -> tuple[str, Any, str]:
    """Descend into the first sub-estimator that fails to save on its own, as deep as it goes."""
    for name, child in _sub_estimators(obj):
        try:
            sio.dumps(child)
        except Exception as exc:
            inner = name if path == "the pipeline" else f"{path} > {name}"
            return _innermost(child, inner, exc)
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return path, obj, text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def _sub_estimators(obj: Any) -> Iterator[tuple[str, Any]]:
    """Named fitted sub-estimators: pipeline steps, column/union transformers, and any
    attribute holding an estimator (``estimator_``, ``estimators_[i]``...)."""
    steps = getattr(obj, "steps", None) or getattr(obj, "transformer_list", None)
    if isinstance(steps, list):
        yield from ((str(s[0]), s[1]) for s in steps if _is_estimator(s[1]))
        return
    fitted = getattr(obj, "transformers_", None)
    if isinstance(fitted, list):
        yield from ((str(t[0]), t[1]) for t in fitted if _is_estimator(t[1]))
        return
    for attr, value in sorted(getattr(obj, "__dict__", {}).items()):
        if _is_estimator(value):
            yield attr, value
        elif isinstance(value, list | tuple):
            yield from ((f"{attr}[{i}]", v) for i, v in enumerate(value) if _is_estimator(v))


def _is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and not isinstance(value, type)
