"""`bundle build|verify|inspect|check` and `score`: the research side of the CLI."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import click
import orjson

from model_bundles.build import build_from_config
from model_bundles.bundle import load_bundle
from model_bundles.reference import EmptyFeatureWarning, ManyCategoriesWarning
from model_bundles.store import read_manifest
from model_bundles.verify import describe_plan
from model_bundles.versions import version_notes
from schemas.manifest import FeatureSpec, Manifest
from worker.cli.format_options import PatientSchemas, decoder_of, format_options, pop_format
from worker.cli.options import (
    FILE,
    batch_options,
    bundle_option,
    option,
    trust_options,
    warn_only_option,
    writable,
)
from worker.core.wire import ValueFormat
from worker.kafka.settings import ONE_SHOT_BROKER_TIMEOUT_S
from worker.research.bundle_check import check_events
from worker.research.score import score_file

_dir = click.Path(file_okay=False, path_type=Path)
_existing_dir = click.Path(exists=True, file_okay=False, path_type=Path)


@click.group()
def bundle() -> None:
    """Build, verify and inspect model bundles."""


@bundle.command()
@option("--config", type=FILE, required=True, help="training config (TOML)")
@option("--data", type=FILE, required=True, help="training data (.csv or .parquet)")
@option("--out", type=_dir, required=True, help="bundle directory to write")
def build(config: Path, data: Path, out: Path) -> None:
    """Fit the pipeline of CONFIG on DATA and save a verifiable bundle."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmptyFeatureWarning)
        warnings.simplefilter("always", ManyCategoriesWarning)
        manifest = build_from_config(config, data, out)
    for warning in caught:  # one line each; others go where Python sends them
        if issubclass(warning.category, EmptyFeatureWarning | ManyCategoriesWarning):
            _warn(str(warning.message))
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    click.echo(f"built {manifest.name} {manifest.version} {manifest.digest} -> {out}")
    proved = manifest.build.get("proved_rows")
    if proved:
        click.echo(f"proved: {proved} training rows sent as JSON events score as the pipeline")
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(manifest.metrics.items()))
    click.echo(f"holdout: {metrics}")


@bundle.command()
@click.argument("bundle_dir", type=_existing_dir)
@warn_only_option()
@trust_options()
def verify(
    bundle_dir: Path, warn_only: bool, trust_packages: tuple[str, ...], trust_code: tuple[str, ...]
) -> None:
    """Check file digests, trusted types, library versions and golden outputs."""
    loaded = load_bundle(
        bundle_dir,
        warn_only=warn_only,
        trust_packages=trust_packages,
        trust_code=trust_code,
        warn=_warn,
    )
    m = loaded.manifest
    click.echo(f"ok {m.name} {m.version} {m.digest}")
    click.echo(f"  files: {len(m.files)} digests match")
    notes = "".join(f" ({note})" for note in version_notes(m.versions))
    click.echo(
        f"  versions: {'match' if not loaded.selfcheck.version_problems else 'DIFFER'}{notes}"
    )
    state = "identical" if not loaded.selfcheck.golden_problems else "DIFFER"
    click.echo(f"  golden sample: {describe_plan(loaded.selfcheck.golden_rows)}: {state}")
    for line in trust_lines(m):
        click.echo(f"  {line}")


@bundle.command()
@click.argument("bundle_dir", type=_existing_dir)
@click.option("--json", "as_json", is_flag=True, help="print the manifest as JSON")
def inspect(bundle_dir: Path, as_json: bool) -> None:
    """Show what a bundle holds (reads the manifest only)."""
    manifest = read_manifest(bundle_dir)
    if as_json:
        dumped = manifest.model_dump(mode="json")
        click.echo(orjson.dumps(dumped, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        return
    for line in describe(manifest):
        click.echo(line)


@bundle.command()
@click.argument("bundle_dir", type=_existing_dir)
@option("--events", type=FILE, required=True, help="a recording or JSONL sample of the topic")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@option(
    "--value-format",
    type=click.Choice(["json", "avro", "json-schema"]),
    default="json",
    show_default=True,
    help="avro, json-schema: --events is a recording of wire-format values (`record`)",
)
@trust_options()
def check(
    bundle_dir: Path,
    events: Path,
    as_json: bool,
    value_format: str,
    trust_packages: tuple[str, ...],
    trust_code: tuple[str, ...],
) -> int:
    """Check BUNDLE's features against a sample of the live topic: per feature present,
    absent, null, wrong-type and unknown-category rates, and the share of events that would
    be dead letters; exit 1 when a feature the model needs is absent from most events."""
    loaded = load_bundle(
        bundle_dir, warn_only=True, trust_packages=trust_packages, trust_code=trust_code, warn=_warn
    )
    report = check_events(loaded, events, decoder_of(ValueFormat(value_format)))
    if as_json:
        click.echo(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2))
    else:
        m = loaded.manifest
        click.echo(f"bundle {m.name} {m.version} {m.digest}")
        for line in report.table():
            click.echo(line)
    return 1 if report.mostly_absent() else 0


def describe(m: Manifest) -> list[str]:
    params = ", ".join(f"{k}={v}" for k, v in sorted(m.estimator.params.items()) if v is not None)
    features = ", ".join(f"{f.name} ({feature_type(f)})" for f in m.features)
    lines = [
        f"{m.name} {m.version}  {m.digest}",
        f"task: {m.task}, target {m.target!r}" + (f", classes {m.classes}" if m.classes else ""),
        f"estimator: {m.estimator.name} ({m.estimator.class_path})",
        f"params: {params}",
        f"seeds: {m.seeds}",
        f"features: {features}",
        f"ids: records' event_id is the event's {m.id_column or 'event_id'!r} field"
        + (" (id_column; must be unique per event)" if m.id_column else ""),
        f"data: sha256 {m.data.sha256[:16]}..., {m.data.rows} rows x {m.data.columns} columns "
        f"from {m.data.source} (train {m.data.train_rows}, holdout {m.data.holdout_rows})",
        "versions: " + ", ".join(f"{k} {v}" for k, v in sorted(m.versions.items())),
        "metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(m.metrics.items())),
    ]
    lines += trust_lines(m)
    lines += [f"file: {name} {digest}" for name, digest in sorted(m.files.items())]
    return lines


def feature_type(f: FeatureSpec) -> str:
    """``zone (categorical, int64)``, ``at (numeric, datetime64[us, UTC], nullable)``."""
    dtype = f.dtype
    if f.category_dtype is not None:
        ordered = ", ordered" if f.category_dtype.ordered else ""
        dtype += f"[{', '.join(map(repr, f.category_dtype.categories))}{ordered}]"
    return f"{f.kind}, {dtype}{', nullable' if f.nullable else ''}"


def trust_lines(m: Manifest) -> list[str]:
    """What loading the bundle needs beyond the scikit-learn catalogue, with the options."""
    lines = [
        f"package: {name} {version} (load with --trust-package {name})"
        for name, version in sorted(m.trust.packages.items())
    ]
    if m.trust.code is not None:
        modules = ", ".join(m.trust.code.modules)
        lines.append(f"code: {m.trust.code.digest} ({modules}; load with --trust-code)")
    if m.decision:
        lines.append('outputs: decision function (records carry "decision")')
    lines += [f"scoring: {k} {v['fitted']} -> {v['scoring']}" for k, v in m.scoring_params.items()]
    return lines


@click.command()
@bundle_option()
@option(
    "--input",
    "input_path",
    type=FILE,
    required=True,
    help="events, one JSON per line; a recording with --value-format avro|json-schema",
)
@option("--output", type=FILE, required=True, help="prediction records (JSONL)")
@option("--rejects", type=FILE, default=None, help="write rejected lines here (JSONL)")
@batch_options()
@format_options()
@warn_only_option()
@trust_options()
def score(
    bundle: Path,
    input_path: Path,
    output: Path,
    rejects: Path | None,
    batch_size: int,
    id_field: str | None,
    warn_only: bool,
    trust_packages: tuple[str, ...],
    trust_code: tuple[str, ...],
    **formats: Any,
) -> int:
    """Research path: score a JSONL file of events with a bundle, no Kafka; exit 1 when no
    event could be scored. Avro and JSON Schema events come as a recording (`record`),
    whose writer schemas it holds; records then carry their source, like the live worker's."""
    value_format, registry = pop_format(formats)
    schemas = PatientSchemas(registry, ONE_SHOT_BROKER_TIMEOUT_S) if registry else None
    for path in filter(None, (output, rejects)):
        writable(path)
    loaded = load_bundle(
        bundle,
        warn_only=warn_only,
        trust_packages=trust_packages,
        trust_code=trust_code,
        warn=_warn,
    )
    summary = score_file(
        loaded,
        input_path,
        output,
        rejects,
        batch_size,
        id_field,
        _rejected,
        decoder=decoder_of(value_format),
        schemas=schemas,
    )
    click.echo(summary.line(output), err=True)
    if summary.scored == 0:
        rejected = sum(summary.rejected.values())
        click.echo(f"scoring-worker: error: no event scored ({rejected} rejected)", err=True)
        return 1
    return 0


def _rejected(message: str) -> None:
    print(f"scoring-worker: rejected: {message}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"scoring-worker: warning: {message}", file=sys.stderr)
