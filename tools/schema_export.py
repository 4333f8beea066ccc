"""Export the JSON Schemas of everything on the wire and on disk; `--check` fails on drift.

Here rather than in schemas/ because the demo event schema comes from the demo config
(model_bundles.config): schemas/ imports nothing of the project.

`python -m tools.schema_export --write schemas/json` rewrites them;
`python -m tools.schema_export --check schemas/json` (make schemas-check, in CI) compares.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from model_bundles.config import load_config
from schemas.events import event_model
from schemas.manifest import FeatureSpec, Manifest
from schemas.records import DeadLetter, PredictionRecord

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "penguins" / "config.toml"


def demo_features() -> list[FeatureSpec]:
    config = load_config(DEMO_CONFIG)
    numeric = [
        FeatureSpec(name=n, kind="numeric", dtype="float64", nullable=True)
        for n in config.features.numeric
    ]
    categorical = [
        FeatureSpec(name=n, kind="categorical", dtype="object", nullable=True)
        for n in config.features.categorical
    ]
    return numeric + categorical


def schemas() -> dict[str, dict[str, Any]]:
    demo_event = event_model(demo_features(), name="PenguinsEvent")
    return {
        "prediction-record.schema.json": PredictionRecord.model_json_schema(),
        "dead-letter.schema.json": DeadLetter.model_json_schema(),
        "manifest.schema.json": Manifest.model_json_schema(),
        "penguins-event.schema.json": demo_event.model_json_schema(),
    }


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.schema_export")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path, metavar="DIR")
    mode.add_argument("--check", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    target: Path = args.write or args.check
    stale = []
    for name, schema in schemas().items():
        path, content = target / name, render(schema)
        if args.write:
            target.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        elif not path.exists() or path.read_bytes() != content:
            stale.append(name)
    if stale:
        fix = f"python -m tools.schema_export --write {target}"
        print(f"schemas out of date: {', '.join(stale)}; run {fix}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
