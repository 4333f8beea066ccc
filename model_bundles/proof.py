"""What a build checks and fixes so that the loader never rejects what it wrote (SPEC "Trust").

- scoring parameters that make outputs depend on scheduling (``n_jobs``) are set
  to their reproducible value in the saved model, and recorded in the manifest;
- features are put in the fitted column order; a pipeline fitted without feature
  names is refused unless the caller confirms that the list is that order;
- the trust the model file needs is declared (third-party package versions, the
  code digest), never granted by the file at load;
- the written bundle is loaded with that trust and its golden sample re-scored
  (batch size 1 and the whole sample among others) before it replaces ``out_dir``;
- the proof against the team's pipeline (``prove_served``): the training rows (a
  seeded sample of ``PROOF_ROWS`` when there are more), written as JSON events the
  way a producer writes them, go through the loaded bundle's serving path (check,
  frame, model) at full size and one at a time, and must give the pipeline's own
  outputs on the team's frame bit for bit; else the build is refused with one line
  naming the column and the first differing row.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import skops.io as sio

from model_bundles.codepack import code_digest, code_modules
from model_bundles.events import check_batch, frame_to_events
from model_bundles.predict import Outputs
from model_bundles.trust.catalogue import trusted_types
from model_bundles.trust.policy import needed_packages, root
from model_bundles.values import is_missing
from model_bundles.versions import package_versions
from schemas.errors import BadInputError, BundleError
from schemas.manifest import FeatureSpec, TrustSpec

if TYPE_CHECKING:
    from model_bundles.bundle import Bundle

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
            raise BadInputError(_no_names(pipeline, expected))
        return list(specs)
    names = [str(n) for n in fitted]
    if sorted(names) != sorted(expected):
        raise BadInputError(
            f"the pipeline was fitted on columns {names}, but the features are {expected}: "
            "fit it on exactly the feature columns"
        )
    by_name = {s.name: s for s in specs}
    return [by_name[name] for name in names]


def _no_names(pipeline: Any, expected: list[str]) -> str:
    """Why the pipeline records no column names, and the fix."""
    steps = getattr(pipeline, "steps", None)
    first = steps[0] if steps else None
    if first is not None and not type(first[1]).__module__.startswith("sklearn."):
        step = type(first[1])
        return (
            f"the pipeline's first step {first[0]!r} ({step.__module__}.{step.__qualname__}) "
            "sets no feature_names_in_, so the bundle cannot tell which columns it was fitted "
            "on, in which order: in its fit(), set self.feature_names_in_ = "
            "np.asarray(X.columns, dtype=object) (or call sklearn.utils.validation."
            f"validate_data), or pass feature_order_confirmed=True if {expected} is the order"
        )
    return (
        "the pipeline was fitted on an array without column names, so nothing shows its "
        f"columns are in the order {expected}; fit it on a DataFrame, or pass "
        "feature_order_confirmed=True if that is the fitted order"
    )


def refuse_unnamed_functions(pipeline: Any) -> None:
    """BadInputError naming the parameter for a lambda or a function defined inside
    another one: a model file refers to functions by module and name, and these have
    none that loads (``module 'teamfeat' has no attribute '<lambda>'``)."""
    params = pipeline.get_params(deep=True) if hasattr(pipeline, "get_params") else {}
    for key, value in sorted(params.items()):
        name = getattr(value, "__qualname__", None)
        if not callable(value) or isinstance(value, type) or not isinstance(name, str):
            continue
        if "<lambda>" in name or "<locals>" in name:
            code = getattr(value, "__code__", None)
            where = f" ({code.co_filename}, line {code.co_firstlineno})" if code else ""
            what = "a lambda" if "<lambda>" in name else f"a nested function {name}"
            raise BadInputError(
                f"{key} is {what}{where}: a bundle refers to a function by its module and "
                "name, and this one has none; write it as a def at the top level of a "
                "module, pass that function, and pack the module with code=[module]"
            )


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


def prove_and_place(
    staging: Path,
    out_dir: Path,
    trust: TrustSpec,
    prove: Callable[[Bundle], object] = lambda bundle: None,
) -> None:
    """Load what was written with the trust it declares, run ``prove`` on it (e.g.
    ``prove_served``); only then put it at ``out_dir``.

    BadInputError (exit 2) when the bundle would not load, its outputs are not
    bit-reproducible or ``prove`` refuses it; nothing is left at ``out_dir`` then.
    """
    from model_bundles.bundle import load_bundle

    code = [trust.code.digest] if trust.code else []
    try:
        loaded = load_bundle(staging, trust_packages=list(trust.packages), trust_code=code)
        prove(loaded)
    except BundleError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BadInputError(f"the built bundle does not prove itself: {exc}") from None
    except BadInputError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out_dir.exists():
        if any(out_dir.iterdir()) and not (out_dir / "manifest.json").exists():
            shutil.rmtree(staging, ignore_errors=True)
            raise BadInputError(f"{out_dir} exists and is not a bundle: not replacing it")
        shutil.rmtree(out_dir)
    staging.rename(out_dir)


@contextmanager
def pipeline_errors(what: str = "the training rows") -> Iterator[None]:
    """Any exception the team's pipeline raises within the block becomes one line
    (BadInputError, exit 2) naming the step that raised it and what to do."""
    try:
        yield
    except (BadInputError, BundleError):
        raise
    except Exception as exc:
        raise BadInputError(
            f"the pipeline fails scoring {what}{_raised_in(exc)}: {type(exc).__name__}: "
            f"{_first_line(exc)}; pass as train the frame it was fitted on, with its dtypes, "
            "and check that pipeline.predict scores it"
        ) from None


def _raised_in(exc: BaseException) -> str:
    """`` in step 'scaler' (module.Class)``: the innermost frame whose ``self`` is an
    estimator (has ``fit``), else nothing."""
    found = ""
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if owner is not None and hasattr(owner, "fit"):
            kind = type(owner)
            found = f" in {kind.__module__}.{kind.__qualname__}"
        tb = tb.tb_next
    return found


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


PROOF_ROWS = 5000
"""Training rows the proof sends through the serving path (a seeded sample when more)."""
PROOF_SEED = 0
PROOF_SINGLE_ROWS = 20
"""Of those, how many are also scored one event at a time (the live worker's light load)."""


def proof_sample(frame: pd.DataFrame) -> pd.DataFrame:
    """Every row, or ``PROOF_ROWS`` of them drawn with ``PROOF_SEED``, in frame order."""
    if len(frame) <= PROOF_ROWS:
        return frame
    rows = np.sort(np.random.default_rng(PROOF_SEED).choice(len(frame), PROOF_ROWS, replace=False))
    return frame.iloc[rows]


def producer_events(frame: pd.DataFrame, bundle: Bundle) -> list[dict[str, Any]]:
    """The rows of the team's frame as a producer sends them: JSON bytes, read back."""
    return [orjson.loads(orjson.dumps(e)) for e in frame_to_events(frame, bundle.features)]


def prove_served(bundle: Bundle, team_frame: pd.DataFrame, expected: Outputs) -> int:
    """The bundle serves the team's pipeline: the rows of ``team_frame`` (the feature
    columns as the pipeline was fitted on them) sent as JSON events score exactly
    ``expected`` (the pipeline's outputs on ``team_frame``). Returns the rows proved.

    BadInputError, one line: the first row the bundle would reject, or the first
    column whose served values differ from the fitted ones, with its first row.
    """
    events = producer_events(team_frame, bundle)
    checked = check_batch(events, bundle.features)
    labels = team_frame.index
    if checked.rejected:
        row, rejection = checked.rejected[0]
        raise BadInputError(
            f"the bundle would reject training row index {labels[row]!r} sent as "
            f"JSON: {rejection.reason.value}: {rejection.detail}"
        )
    with pipeline_errors("the training rows sent as JSON events through the bundle"):
        served = bundle.predict_model_frame(checked.frame)
        single = [bundle.predict_events(events[i : i + 1]) for i in range(PROOF_SINGLE_ROWS)]
    differing = _differing_rows(expected, served)
    if not differing:
        for i, one in enumerate(single[: len(events)]):
            if _differing_rows(_row(served, i), one):
                raise BadInputError(
                    f"training row index {labels[i]!r} scores differently alone than "
                    "among the other rows: the pipeline is not row-independent"
                )
        return len(events)
    fitted = team_frame.reset_index(drop=True)
    for feature in bundle.features:
        first = _first_difference(checked.frame[feature.name], fitted[feature.name])
        if first is not None:
            raise BadInputError(
                f"the bundle would serve other scores than the pipeline: column "
                f"{feature.name!r} (fitted {fitted[feature.name].dtype}, served "
                f"{checked.frame[feature.name].dtype}) differs first at training row "
                f"index {labels[first]!r}: {_value(fitted[feature.name], first)} fitted, "
                f"{_value(checked.frame[feature.name], first)} served"
            )
    raise BadInputError(
        f"the bundle would serve other scores than the pipeline on {len(differing)} of "
        f"{len(events)} training rows, first row index {labels[differing[0]]!r}, "
        "although the frames are equal: the pipeline's outputs are not reproducible"
    )


def _row(outputs: Outputs, i: int) -> Outputs:
    scores = None if outputs.scores is None else outputs.scores[i : i + 1]
    return Outputs(outputs.predictions[i : i + 1], scores, outputs.decision)


def _differing_rows(expected: Outputs, got: Outputs) -> list[int]:
    same = np.asarray(
        [_same(a, b) for a, b in zip(expected.predictions, got.predictions, strict=True)]
    )
    if expected.scores is not None and got.scores is not None:
        a, b = np.asarray(expected.scores), np.asarray(got.scores)
        same &= np.all((a == b) | (np.isnan(a) & np.isnan(b)), axis=1)
    elif (expected.scores is None) != (got.scores is None):
        same[:] = False
    return np.flatnonzero(~same).tolist()


def _first_difference(served: pd.Series, fitted: pd.Series) -> int | None:
    """First row whose served value is not the fitted value (of the same type); 0 when
    only the dtypes differ; None when the columns are equal."""
    for i, (a, b) in enumerate(zip(served.tolist(), fitted.tolist(), strict=True)):
        if not _same(a, b):
            return i
    return None if served.dtype == fitted.dtype else 0


def _same(a: Any, b: Any) -> bool:
    missing_a, missing_b = is_missing(a), is_missing(b)
    if missing_a or missing_b:
        return missing_a and missing_b
    plain_a = a.item() if isinstance(a, np.generic) else a
    plain_b = b.item() if isinstance(b, np.generic) else b
    return type(plain_a) is type(plain_b) and bool(plain_a == plain_b)


def _value(column: pd.Series, row: int) -> str:
    value = column.iloc[row]
    return repr(value.item() if isinstance(value, np.generic) else value)
