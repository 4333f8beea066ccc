"""Build a bundle: from a training config and a data file, or from any fitted pipeline."""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_bundles import metrics, training
from model_bundles.codepack import CodeItem, pack
from model_bundles.config import TrainingConfig, load_config
from model_bundles.data import fingerprint, read_data, rows_of
from model_bundles.digest import canonical_json, canonical_skops
from model_bundles.dtypes import fitted_type, frame_type
from model_bundles.estimators import make_estimator, make_pipeline
from model_bundles.events import events_to_frame, frame_to_events, normalize_frame
from model_bundles.predict import predict_outputs
from model_bundles.proof import (
    declared_trust,
    fitted_order,
    pipeline_errors,
    proof_sample,
    prove_and_place,
    prove_served,
    refuse_unnamed_functions,
    reproducible_scoring,
    staging_dir,
)
from model_bundles.reference import Reference, feature_references
from model_bundles.research_outputs import (
    class_score_references,
    estimator_spec,
    golden_rows,
    plain,
    prediction_reference,
    reference_outputs,
)
from model_bundles.store import MODEL, REFERENCE, dump_model, write_bundle
from model_bundles.values import Where, category_text, row_number
from model_bundles.versions import runtime_versions
from schemas.errors import BadInputError
from schemas.manifest import FORMAT_VERSION, DataFingerprint, FeatureSpec, Manifest, Task

GOLDEN_ROWS = 200


def build_from_config(config_path: Path, data_path: Path, out_dir: Path) -> Manifest:
    """The `bundle build` command: config + data file -> fitted, verified-on-load bundle."""
    config = load_config(config_path)
    frame = read_data(data_path, config.data.na_values)
    return build_from_frame(
        config, frame, out_dir, data_source=data_path.name, where=rows_of(data_path)
    )


def build_from_frame(
    config: TrainingConfig,
    frame: pd.DataFrame,
    out_dir: Path,
    data_source: str = "dataframe",
    where: Where = row_number,
) -> Manifest:
    """Fit the config's pipeline on a frame read as ``model_bundles.training`` defines.

    ``where`` names a row in errors (``line N`` of a CSV file, else ``row N``).
    """
    numeric, categorical = config.features.numeric, config.features.categorical
    target = config.data.target
    _require_columns(frame, [target, *numeric, *categorical], config.data.id_column)
    data = training.prepare(config, frame, where)
    labelled, task = data.labelled, data.task
    estimator = make_estimator(config.model.estimator, task, config.model.params, config.model.seed)
    specs = _feature_specs(
        labelled, numeric, categorical, nullable=set(numeric) | set(categorical), typed=False
    )
    train, holdout = training.split(
        labelled, target, task, config.data.test_size, config.data.split_seed
    )
    pipeline = make_pipeline(numeric, categorical, estimator)
    # the frame the pipeline is fitted on, features in canonical form: what it serves
    train = train.assign(**normalize_frame(train, specs))
    holdout = holdout.assign(**normalize_frame(holdout, specs))
    pipeline.fit(train[[s.name for s in specs]], training.label_array(train[target], task))
    return build_bundle(
        pipeline,
        train,
        out_dir,
        holdout=holdout,
        name=config.bundle.name,
        version=config.bundle.version,
        target=target,
        features=specs,
        task=task,
        id_column=config.data.id_column,
        estimator_name=config.model.estimator,
        seeds={"split_seed": config.data.split_seed, "model_seed": config.model.seed},
        data=data.rows,
        data_source=data_source,
    )


def build_bundle(
    pipeline: Any,
    train: pd.DataFrame,
    out_dir: Path,
    *,
    name: str,
    version: str,
    target: str,
    features: Sequence[FeatureSpec] | None = None,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    holdout: pd.DataFrame | None = None,
    task: Task | None = None,
    id_column: str | None = None,
    estimator_name: str = "custom",
    seeds: Mapping[str, int | None] | None = None,
    data: pd.DataFrame | None = None,
    data_source: str = "dataframe",
    code: Sequence[CodeItem] = (),
    feature_order_confirmed: bool = False,
) -> Manifest:
    """Python API: save an already fitted pipeline with everything needed to reproduce it.

    ``train`` is the frame it was fitted on (features as fitted + target); ``holdout``, when
    given, supplies the golden sample and metrics (else the training rows do).
    ``features`` may be omitted: then ``numeric``/``categorical`` name them (and
    without those, the pipeline's ``feature_names_in_``, each column's kind from its
    dtype), each with the dtype it has in ``train``, which the serving path builds
    from the events' JSON values (``model_bundles.dtypes``); whether a null is
    allowed is found by asking the pipeline itself. ``code``
    packs the user's own modules (module objects, names or paths) into ``code/``.
    A pipeline fitted without feature names needs ``feature_order_confirmed``.

    The bundle is written beside ``out_dir``, loaded with the trust it declares and
    its golden sample re-scored; then the training rows, sent as JSON events through
    its serving path, must score as ``pipeline`` on ``train`` (``proof.prove_served``).
    Only a bundle that proves itself replaces ``out_dir``. BadInputError (exit 2)
    for anything that would not load or not serve the pipeline's outputs bit for bit.
    """
    task = task or ("classification" if hasattr(pipeline, "classes_") else "regression")
    named = [*numeric, *categorical, *(f.name for f in features or ())]
    training.refuse_id_feature(id_column, named)
    refuse_unnamed_functions(pipeline)
    specs = (
        list(features) if features else _probe_specs(pipeline, train, numeric, categorical, task)
    )
    specs = fitted_order(pipeline, specs, feature_order_confirmed)
    code_files = pack(code)
    team_frame = proof_sample(train)[[s.name for s in specs]]
    with reproducible_scoring(pipeline) as scoring_params:
        with pipeline_errors():
            team_outputs = predict_outputs(pipeline, team_frame, task)
        model = canonical_skops(dump_model(pipeline))
        trust = declared_trust(model, code_files)
        evaluation = holdout if holdout is not None else train
        golden_events = _golden_events(evaluation.head(GOLDEN_ROWS), specs, id_column)
        with pipeline_errors("the holdout rows" if holdout is not None else "the training rows"):
            golden_frame = events_to_frame(golden_events, specs)
            golden_outputs = predict_outputs(pipeline, golden_frame, task)
            eval_outputs = predict_outputs(pipeline, normalize_frame(evaluation, specs), task)
            ref_outputs = reference_outputs(pipeline, train, holdout, specs, task, eval_outputs)
        classes = [plain(c) for c in pipeline.classes_] if task == "classification" else None
        estimator = estimator_spec(pipeline, estimator_name)
    reference = Reference(
        features=feature_references(normalize_frame(train, specs), specs),
        prediction=prediction_reference(ref_outputs, classes),
        class_scores=class_score_references(ref_outputs, classes),
        golden=golden_rows(golden_events, golden_outputs),
    )
    y_eval = training.label_array(evaluation[target], task)
    scored = metrics.holdout_metrics(task, y_eval, eval_outputs, classes)
    if holdout is None:
        scored = {f"train_{k}": v for k, v in scored.items()}
    source = data if data is not None else train
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "task": task,
        "target": target,
        "id_column": id_column,
        "classes": classes,
        "features": [s.model_dump() for s in specs],
        "estimator": estimator,
        "seeds": dict(seeds or {}),
        "data": DataFingerprint(
            sha256=fingerprint(source),
            rows=len(source),
            columns=len(source.columns),
            source=data_source,
            train_rows=len(train),
            holdout_rows=0 if holdout is None else len(holdout),
        ).model_dump(),
        "versions": runtime_versions(),
        "metrics": scored,
        "trust": trust.model_dump(),
        "decision": eval_outputs.decision,
        "scoring_params": scoring_params,
        "build": {
            "created_at": datetime.now(UTC).isoformat(),
            "host": platform.node(),
            "proved_rows": len(team_frame),
        },
    }
    files = {
        MODEL: model,
        REFERENCE: canonical_json(reference.model_dump(mode="json")),
        **code_files,
    }
    staging = staging_dir(out_dir)
    written = write_bundle(staging, manifest, files)
    prove_and_place(
        staging, out_dir, trust, lambda bundle: prove_served(bundle, team_frame, team_outputs)
    )
    return written


def _require_columns(frame: pd.DataFrame, needed: list[str], id_column: str | None) -> None:
    if frame.empty:
        raise BadInputError("data has no rows")
    absent = [c for c in [*needed, *([id_column] if id_column else [])] if c not in frame.columns]
    if absent:
        there = ", ".join(map(str, frame.columns[:20])) + (
            " ..." if len(frame.columns) > 20 else ""
        )
        hint = ""
        if len(frame.columns) == 1 and any(d in str(frame.columns[0]) for d in ";\t|"):
            hint = " (one column only: is the file delimited by something other than a comma?)"
        raise BadInputError(
            f"column(s) not in the data: {', '.join(absent)}; the data has: {there}{hint}"
        )


def _feature_specs(
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    nullable: set[str],
    typed: bool,
) -> list[FeatureSpec]:
    """Specs in the canonical form of a config build, or (``typed``) with each column's
    dtype in ``frame``; a dtype without a missing value is never nullable."""
    specs = []
    for kind, names in (("numeric", numeric), ("categorical", categorical)):
        for name in names:
            canonical = "float64" if kind == "numeric" else "object"
            dtype, category = fitted_type(frame[name], name) if typed else (canonical, None)
            if dtype.startswith("datetime64"):
                kind = "numeric"  # drift bins over time; its categories would be every value
            seen = None
            if kind == "categorical":
                texts = {category_text(v) for v in frame[name].tolist()}
                seen = sorted(t for t in texts if t is not None)
            spec = FeatureSpec(
                name=name,
                kind=kind,
                dtype=dtype,
                nullable=name in nullable,
                categories=seen,
                category_dtype=category,
            )
            if not spec.canonical and not frame_type(spec).holds_missing:
                spec = spec.model_copy(update={"nullable": False})
            specs.append(spec)
    for spec in specs:
        column = frame[spec.name]
        if spec.kind == "numeric" and not (
            pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column)
        ):
            raise BadInputError(f"numeric feature {spec.name!r} has non-numeric values in the data")
    return specs


def _probe_specs(
    pipeline: Any,
    train: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    task: Task,
) -> list[FeatureSpec]:
    """Specs with the dtypes of ``train``; a feature is nullable when the fitted pipeline
    scores a row with it missing."""
    if not numeric and not categorical:
        numeric, categorical = _kinds_by_dtype(pipeline, train)
    _require_columns(train, [*numeric, *categorical], None)
    draft = _feature_specs(train, numeric, categorical, nullable=set(), typed=True)
    row = normalize_frame(train.head(1), draft)
    fitted = [str(n) for n in getattr(pipeline, "feature_names_in_", ())]
    if sorted(fitted) == sorted(row.columns):  # the probe must pass the fitted order's check
        row = row[fitted]
    nullable: set[str] = set()
    for spec in draft:
        probe = row.copy()
        if not spec.canonical:
            if not frame_type(spec).holds_missing:
                continue
            probe[spec.name] = pd.Series(frame_type(spec).column([None]))
        elif spec.kind == "numeric":
            probe[spec.name] = np.nan
        else:
            probe[spec.name] = np.array([np.nan], dtype=object)
        try:
            outputs = predict_outputs(pipeline, probe, task)
        except Exception:
            # (a ValueError from an imputer, a TypeError from pd.NA in a comparison...): the
            # feature is then required, and the proof names any training row it rejects.
            continue
        finite = outputs.scores if outputs.scores is not None else outputs.predictions
        if np.all(np.isfinite(np.asarray(finite, dtype=np.float64))):
            nullable.add(spec.name)
    return _feature_specs(train, numeric, categorical, nullable, typed=True)


def _kinds_by_dtype(pipeline: Any, train: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The fitted columns, numeric (numbers, datetimes) or categorical (the rest)."""
    fitted = getattr(pipeline, "feature_names_in_", None)
    if fitted is None:
        raise BadInputError("name the features: pass features=, or numeric=/categorical=")
    names = [str(n) for n in fitted]
    _require_columns(train, names, None)
    numeric = [
        n
        for n in names
        if (pd.api.types.is_numeric_dtype(train[n]) and not pd.api.types.is_bool_dtype(train[n]))
        or pd.api.types.is_datetime64_any_dtype(train[n])
    ]
    return numeric, [n for n in names if n not in numeric]


def _golden_events(
    frame: pd.DataFrame, specs: Sequence[FeatureSpec], id_column: str | None
) -> list[dict[str, Any]]:
    events = frame_to_events(frame, specs)
    if id_column and id_column in frame.columns:
        for event, event_id in zip(events, frame[id_column].tolist(), strict=True):
            event[id_column] = category_text(event_id)
    return events
