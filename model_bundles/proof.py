"""What a build checks and fixes so that the loader never rejects what it wrote (SPEC "Trust").

- scoring parameters that make outputs depend on scheduling (``n_jobs``) are set
  to their reproducible value in the saved model, and recorded in the manifest;
- features are put in the fitted column order; a pipeline fitted without feature
  names is refused unless the caller confirms that the list is that order;
- the trust the model file needs is declared (third-party package versions, the
  code digest), never granted by the file at load;
- the written bundle is loaded with that trust and its golden sample re-scored
  (batch size 1 and the whole sample among others) before it replaces ``out_dir``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import skops.io as sio

from model_bundles.codepack import code_digest, code_modules
from model_bundles.errors import BadInputError, BundleError
from model_bundles.trust.catalogue import trusted_types
from model_bundles.trust.policy import needed_packages, root
from model_bundles.versions import package_versions
from schemas.manifest import FeatureSpec, TrustSpec

REPRODUCIBLE_PARAMS = {"n_jobs": 1}
"""Parameters whose fitted value can make outputs depend on thread scheduling."""


@contextmanager
def reproducible_scoring(pipeline: Any) -> Iterator[dict[str, Any]]:
    """Within the block the pipeline scores reproducibly; yields what was changed
    (``{"model__n_jobs": {"fitted": 8, "scoring": 1}}``) and restores it after."""
    changed: dict[str, Any] = {}
    params = pipeline.get_params(deep=True) if hasattr(pipeline, "get_params") else {}
    for key, value in sorted(params.items()):
        leaf = key.rsplit("__", 1)[-1]
        wanted = REPRODUCIBLE_PARAMS.get(leaf)
        if wanted is not None and value not in (None, wanted):
            changed[key] = {"fitted": value, "scoring": wanted}
    if not changed:
        yield changed
        return
    pipeline.set_params(**{k: v["scoring"] for k, v in changed.items()})
    try:
        yield changed
    finally:
        pipeline.set_params(**{k: v["fitted"] for k, v in changed.items()})


def fitted_order(
    pipeline: Any, specs: Sequence[FeatureSpec], order_confirmed: bool
) -> list[FeatureSpec]:
    """The feature specs in the order the pipeline was fitted on.

    BadInputError when the fitted column names are not the features, or when the
    pipeline records no names (fitted on a numpy array) and the caller did not
    confirm that the feature list is the fitted column order.
    """
    expected = [s.name for s in specs]
    fitted = getattr(pipeline, "feature_names_in_", None)
    if fitted is None:
        if not order_confirmed:
            raise BadInputError(
                "the pipeline was fitted without feature names (a numpy array?), so nothing "
                f"shows its columns are in the order {expected}; fit it on a DataFrame, or "
                "pass feature_order_confirmed=True if that is the fitted order"
            )
        return list(specs)
    names = [str(n) for n in fitted]
    if sorted(names) != sorted(expected):
        raise BadInputError(
            f"the pipeline was fitted on columns {names}, but the features are {expected}: "
            "fit it on exactly the feature columns"
        )
    by_name = {s.name: s for s in specs}
    return [by_name[name] for name in names]


def declared_trust(model: bytes, code: dict[str, bytes]) -> TrustSpec:
    """The trust a model file needs: third-party packages with versions, and the code."""
    modules = code_modules(code)
    types = sio.get_untrusted_types(data=model)
    if any(root(t) == "__main__" for t in types):
        defined = ", ".join(t for t in types if root(t) == "__main__")
        raise BadInputError(
            f"the pipeline holds {defined}, defined in __main__ (a notebook or script): "
            "move it into a module and pass code=[that module]"
        )
    catalogue = trusted_types()
    roots = {root(t) for t in types if t not in catalogue}
    packages = needed_packages(types, modules, package_versions(roots))
    spec: dict[str, Any] = {"packages": packages}
    if code:
        spec["code"] = {"digest": code_digest(code), "modules": modules}
    return TrustSpec.model_validate(spec)


def staging_dir(out_dir: Path) -> Path:
    """A fresh directory beside ``out_dir`` to write into before the proof."""
    staging = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.parent.mkdir(parents=True, exist_ok=True)
    return staging


def prove_and_place(staging: Path, out_dir: Path, trust: TrustSpec) -> None:
    """Load what was written with the trust it declares; only then put it at ``out_dir``.

    BadInputError (exit 2) when the bundle would not load or its outputs are not
    bit-reproducible; nothing is left at ``out_dir`` then.
    """
    from model_bundles.bundle import load_bundle

    code = [trust.code.digest] if trust.code else []
    try:
        load_bundle(staging, trust_packages=list(trust.packages), trust_code=code)
    except BundleError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BadInputError(f"the built bundle does not prove itself: {exc}") from None
    if out_dir.exists():
        if any(out_dir.iterdir()) and not (out_dir / "manifest.json").exists():
            shutil.rmtree(staging, ignore_errors=True)
            raise BadInputError(f"{out_dir} exists and is not a bundle: not replacing it")
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
