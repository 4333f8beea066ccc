"""Write the JSON schemas kubeconform checks the chart's manifests against.

Two sources, both from package registries (scripts/install-helm-tools fetches them):

* Kubernetes' own types: the PyPI wheel of ``kubernetes-validate``, directory
  ``kubernetes-json-schema/<version>-local-strict`` (``additionalProperties: false``
  throughout). Its files point into one shared ``_definitions.json`` with ``$ref``s like
  ``/api/_definitions.json#/$defs/...``, which resolve against the file's ``$id``
  (``https://kubernetes.io/...``): kubeconform would try to fetch them. Each top-level
  kind is written as a standalone schema instead: its refs rewritten to ``#/$defs/...``
  and the definitions it reaches copied into its own ``$defs``.
* Custom resources: the CRDs' ``openAPIV3Schema`` per served version, made strict the way
  kubeconform's own ``openapi2jsonschema.py`` does (``additionalProperties: false`` on
  every object that lists its properties and does not preserve unknown fields).

Layout (kubeconform ``-schema-location`` templates, see scripts/chart_checks.py):
``kubernetes/{kind}{-group}-{version}.json`` and ``crds/{group}/{kind}_{version}.json``.

    python scripts/k8s_schemas.py --wheel W.whl --crds A.yaml B.yaml --out DIR
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

K8S_SCHEMA_VERSION = "v1.37.0-local-strict"
_REF = "/api/_definitions.json#/$defs/"
_LOCAL = "#/$defs/"  # within _definitions.json itself


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        for prefix in (_REF, _LOCAL):
            if isinstance(ref, str) and ref.startswith(prefix):
                found.add(ref[len(prefix) :])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _rewrite(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            out["$ref"] = "#/$defs/" + ref[len(_REF) :]
        return out
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def kubernetes_schemas(wheel: Path, out: Path) -> int:
    """Standalone schemas of every top-level kind in the wheel; returns how many."""
    prefix = f"kubernetes_validate/kubernetes-json-schema/{K8S_SCHEMA_VERSION}/"
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.startswith(prefix) and n.endswith(".json")]
        if not names:
            raise SystemExit(f"k8s_schemas: {wheel} has no {prefix}")
        defs: dict[str, Any] = json.loads(zf.read(prefix + "_definitions.json"))["$defs"]
        kinds = {}
        for name in names:
            base = name[len(prefix) :]
            if base in ("_definitions.json", "all.json"):
                continue
            schema = json.loads(zf.read(name))
            if "x-kubernetes-group-version-kind" in schema:
                kinds[base] = schema
    direct: dict[str, set[str]] = {}
    for key, value in defs.items():
        direct[key] = set()
        _refs(value, direct[key])
    out.mkdir(parents=True, exist_ok=True)
    for base, schema in kinds.items():
        todo: set[str] = set()
        _refs(schema, todo)
        reached: set[str] = set()
        while todo:
            key = todo.pop()
            if key not in reached:
                reached.add(key)
                todo |= direct.get(key, set()) - reached
        missing = reached - defs.keys()
        if missing:
            raise SystemExit(f"k8s_schemas: {base} refers to unknown {sorted(missing)}")
        standalone = {k: v for k, v in _rewrite(schema).items() if k != "$id"}
        standalone["$defs"] = {k: _rewrite(defs[k]) for k in sorted(reached)}
        (out / base).write_text(json.dumps(standalone, separators=(",", ":")))
    return len(kinds)


def strict(node: Any) -> Any:
    """``additionalProperties: false`` wherever an object lists its properties."""
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def crd_schemas(crd_files: list[Path], out: Path) -> list[str]:
    """One schema per CRD and served version; returns ``group/kind_version`` names."""
    written = []
    for path in crd_files:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            group, kind = spec["group"], spec["names"]["kind"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = strict(version["schema"]["openAPIV3Schema"])
                schema["properties"]["apiVersion"] = {
                    "type": "string",
                    "enum": [f"{group}/{version['name']}"],
                }
                schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
                target = out / group / f"{kind.lower()}_{version['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema, separators=(",", ":")))
                written.append(f"{group}/{target.stem}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True)
    parser.add_argument("--crds", type=Path, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    count = kubernetes_schemas(args.wheel, args.out / "kubernetes")
    crds = crd_schemas(args.crds, args.out / "crds")
    if not re.search(r"scaledobject_v1alpha1", " ".join(crds)):
        raise SystemExit("k8s_schemas: no ScaledObject CRD among --crds")
    print(f"k8s_schemas: {count} Kubernetes kinds ({K8S_SCHEMA_VERSION}); CRDs: {', '.join(crds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
