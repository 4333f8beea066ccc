"""Static checks of the deployment files that no off-the-shelf linter covers.

Run by ``scripts/static-checks`` and by ``tests/unit/deploy/test_deploy_static.py``:

* the Grafana dashboard and the Prometheus rules query only metrics the worker
  exports (``worker.monitoring.metrics.METRIC_NAMES``), recording-rule outputs, or ``up``;
* the compose file (as normalised by ``docker-compose config --format json``)
  runs two worker replicas in one group, starts in dependency order, pins images;
* the Dockerfile keeps its contract (multi-stage, pinned base, non-root user,
  health check, entry point, environment defaults);
* every alert has a promtool unit test where it fires and one where it does not.

Needs only the standard library (the YAML files are read line by line, which
is enough for the fields checked here; promtool parses them in full).

    python scripts/deploy_checks.py [--compose-json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROM = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "scoring-worker.json"

PROMETHEUS_BUILTINS = frozenset({"up"})
_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "offset"}
    | {"group_left", "group_right", "inf", "nan", "atan2", "start", "end"}
)


def known_metrics() -> frozenset[str]:
    """Every metric family the worker exports (its registry's own list)."""
    sys.path.insert(0, str(REPO))
    try:
        from worker.monitoring.challenger_metrics import CHALLENGER_METRIC_NAMES
        from worker.monitoring.metrics import METRIC_NAMES
    finally:
        sys.path.remove(str(REPO))
    return frozenset(METRIC_NAMES | CHALLENGER_METRIC_NAMES)


def expand_exposition_names(names: Iterable[str]) -> frozenset[str]:
    """Add the sample names Prometheus sees: counter _total, histogram _bucket/_sum/_count."""
    out: set[str] = set()
    for name in names:
        base = next((name[: -len(s)] for s in _SUFFIXES if name.endswith(s)), name)
        out.update({name, base}, (base + s for s in _SUFFIXES))
    return frozenset(out)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (not functions, labels or keywords)."""
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^{}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?[\w$]+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.$:])[A-Za-z_:][\w:]*", s):
        token = m.group(0)
        if token in _KEYWORDS or s[m.end() :].lstrip().startswith("("):
            continue
        names.add(token)
    return names


def yaml_values(text: str, key: str) -> list[str]:
    """Values of ``key:`` in a YAML file, inline or as a ``|``/``>`` block scalar."""
    values: list[str] = []
    lines = text.splitlines()
    pattern = re.compile(rf"^(\s*)(?:-\s+)?{re.escape(key)}:\s*(.*?)\s*$")
    for i, line in enumerate(lines):
        m = pattern.match(line)
        if not m:
            continue
        indent, value = len(m.group(1)), m.group(2)
        if value[:1] in ("|", ">"):
            block = []
            for nxt in lines[i + 1 :]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                block.append(nxt.strip())
            value = " ".join(block)
        elif value[:1] in ("'", '"'):
            value = value[1:-1]
        values.append(value)
    return values


def recording_rule_names() -> frozenset[str]:
    names: set[str] = set()
    for path in sorted((PROM / "rules").glob("*.yml")):
        names.update(yaml_values(path.read_text(), "record"))
    return frozenset(names)


def rule_exprs() -> list[tuple[str, str]]:
    out = []
    for path in sorted((PROM / "rules").glob("*.yml")):
        out += [(path.name, e) for e in yaml_values(path.read_text(), "expr")]
    return out


def dashboard_exprs(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and templating query of a dashboard."""
    dash = json.loads(path.read_text())
    out = []
    stack = list(dash.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        out += [
            (panel.get("title", "?"), t["expr"]) for t in panel.get("targets", []) if "expr" in t
        ]
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        m = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*\w+\s*\)\s*", query)
        if var.get("type") == "query" and m and m.group(1):
            out.append((f"variable {var['name']}", m.group(1)))
    return out


def unknown_metric_errors(exprs: list[tuple[str, str]], allowed: frozenset[str]) -> list[str]:
    errors = []
    for where, expr in exprs:
        unknown = sorted(promql_metric_names(expr) - allowed)
        if unknown:
            errors.append(f"{where}: unknown metric(s) {', '.join(unknown)} in: {expr}")
    return errors


def allowed_metrics() -> frozenset[str]:
    return expand_exposition_names(known_metrics()) | recording_rule_names() | PROMETHEUS_BUILTINS


def check_dashboard(path: Path = DASHBOARD) -> list[str]:
    dash = json.loads(path.read_text())
    errors = unknown_metric_errors(dashboard_exprs(path), allowed_metrics())
    ids = [p.get("id") for p in dash.get("panels", [])]
    if len(ids) != len(set(ids)):
        errors.append("dashboard: duplicate panel ids")
    if not dash.get("uid"):
        errors.append("dashboard: no uid (provisioned links would break)")
    for p in dash.get("panels", []):
        if p.get("type") != "row" and not p.get("targets"):
            errors.append(f"dashboard: panel {p.get('title')!r} has no query")
    return errors


def check_rules() -> list[str]:
    return unknown_metric_errors(rule_exprs(), allowed_metrics())


def alert_test_coverage(tests: Path, alerts: Path) -> list[str]:
    """Each alert needs one unit test where it fires and one where it does not."""
    names = yaml_values(alerts.read_text(), "alert")
    seen: dict[str, set[bool]] = {n: set() for n in names}
    current = None
    for line in tests.read_text().splitlines():
        m = re.match(r"\s*(?:-\s+)?(alertname|exp_alerts):\s*(.*?)\s*$", line)
        if m and m.group(1) == "alertname":
            current = m.group(2)
        elif m and current is not None:
            seen.setdefault(current, set()).add(m.group(2) != "[]")
            current = None
    errors = []
    for name, cases in seen.items():
        if name not in names:
            errors.append(f"{tests.name}: tests an alert that does not exist: {name}")
        for fires, label in ((True, "fires"), (False, "does not fire")):
            if fires not in cases and name in names:
                errors.append(f"{tests.name}: no test where {name} {label}")
    return errors


def check_compose(cfg: dict[str, Any]) -> list[str]:
    """Checks on ``docker-compose config --format json`` output."""
    services = cfg.get("services")
    if not isinstance(services, dict):
        return ["compose: no services"]
    errors = []
    for name in ("kafka", "kafka-init", "worker", "producer", "prometheus", "grafana"):
        if name not in services:
            errors.append(f"compose: service {name!r} missing")
    if errors:
        return errors
    worker = services["worker"]
    if worker.get("deploy", {}).get("replicas") != 2:
        errors.append("compose: worker must run deploy.replicas: 2")
    if worker.get("ports"):
        errors.append("compose: worker publishes host ports (replicas would collide)")
    want = {"kafka": "service_healthy", "kafka-init": "service_completed_successfully"}
    got = {k: v.get("condition") for k, v in worker.get("depends_on", {}).items()}
    if got != want:
        errors.append(f"compose: worker depends_on must be {want}, is {got}")
    errors += _compose_order_errors(services)
    errors += _compose_image_errors(services)
    env = worker.get("environment", {})
    if (
        env.get("SCORING_WORKER_GROUP_ID") in (None, "")
        or "SCORING_WORKER_BOOTSTRAP_SERVERS" not in env
    ):
        errors.append("compose: worker needs SCORING_WORKER_GROUP_ID and _BOOTSTRAP_SERVERS")
    init_env = services["kafka-init"].get("environment", {})
    topics = {env.get(k) for k in ("SCORING_WORKER_INPUT_TOPIC", "SCORING_WORKER_OUTPUT_TOPIC")}
    topics.add(env.get("SCORING_WORKER_DLQ_TOPIC"))
    if (
        not topics <= set(str(init_env.get("TOPICS", "")).split())
        or init_env.get("PARTITIONS") != "4"
    ):
        errors.append("compose: kafka-init must create the worker's 3 topics with 4 partitions")
    return errors


AVRO_SERVICES = ("schema-registry", "kafka-init-avro", "worker-avro", "producer-avro")


def check_compose_avro(cfg: dict[str, Any]) -> list[str]:
    """Checks on ``docker-compose --profile avro config --format json`` output: the registry
    is built from the repo and healthy-gated, the Avro worker reads and writes Avro through
    it, and its topics are created."""
    services = cfg.get("services") or {}
    missing = [f"compose (avro): service {n!r} missing" for n in AVRO_SERVICES if n not in services]
    if missing:
        return missing
    errors = []
    registry = services["schema-registry"]
    if "build" not in registry or "healthcheck" not in registry:
        errors.append("compose (avro): schema-registry must be built here and have a healthcheck")
    worker = services["worker-avro"]
    env = worker.get("environment", {})
    want = {"SCORING_WORKER_VALUE_FORMAT": "avro", "SCORING_WORKER_OUTPUT_FORMAT": "avro"}
    if any(env.get(k) != v for k, v in want.items()) or not str(
        env.get("SCORING_WORKER_SCHEMA_REGISTRY_URL", "")
    ).startswith("http://schema-registry:"):
        errors.append("compose (avro): worker-avro must read and write Avro via schema-registry")
    if worker.get("depends_on", {}).get("schema-registry", {}).get("condition") != (
        "service_healthy"
    ):
        errors.append("compose (avro): worker-avro must wait for schema-registry healthy")
    topics = {env.get(k) for k in ("SCORING_WORKER_INPUT_TOPIC", "SCORING_WORKER_OUTPUT_TOPIC")}
    topics.add(env.get("SCORING_WORKER_DLQ_TOPIC"))
    created = set(str(services["kafka-init-avro"].get("environment", {}).get("TOPICS")).split())
    if not topics <= created:
        errors.append("compose (avro): kafka-init-avro must create worker-avro's 3 topics")
    for name in AVRO_SERVICES:
        if services[name].get("profiles") != ["avro"]:
            errors.append(f"compose (avro): {name} must be in the avro profile only")
    return errors


def _compose_order_errors(services: dict[str, dict[str, Any]]) -> list[str]:
    errors = []
    conditions = {"service_healthy", "service_completed_successfully", "service_started"}
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep, spec in deps.items():
            cond = spec.get("condition")
            if cond not in conditions:
                errors.append(f"compose: {name} depends_on {dep} without a condition")
            if cond == "service_healthy" and "healthcheck" not in services.get(dep, {}):
                errors.append(f"compose: {name} waits for {dep} healthy, but it has no healthcheck")
    return errors


def _compose_image_errors(services: dict[str, dict[str, Any]]) -> list[str]:
    errors = []
    for name, svc in services.items():
        image = str(svc.get("image", ""))
        if "build" in svc:
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        if not tag or tag == "latest" or not re.search(r"\d", tag):
            errors.append(f"compose: {name} image {image!r} is not pinned to a version")
    return errors


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """Instructions (keyword, arguments) grouped by FROM stage; comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    stages: list[list[tuple[str, str]]] = [[]]
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), " ".join(args.split())))
    return stages


def check_dockerfile(path: Path = REPO / "Dockerfile") -> list[str]:
    text = path.read_text()
    stages = dockerfile_stages(text)
    errors = []
    if len(stages) < 3:  # preamble + at least two FROM stages
        errors.append("Dockerfile: not multi-stage")
    if not re.search(r"python:3\.11\.\d+-slim-bookworm", text):
        errors.append("Dockerfile: base image not pinned to python:3.11.<patch>-slim-bookworm")
    if "requirements.lock" not in text or "--no-deps" not in text:
        errors.append("Dockerfile: must install requirements.lock, then the project --no-deps")
    if "bundle build" not in text:
        errors.append("Dockerfile: demo bundle is not baked in")
    final = dict(stages[-1])
    final_all = stages[-1]
    users = [args for kw, args in final_all if kw == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        errors.append("Dockerfile: final stage must switch to a non-root USER")
    if "/healthz" not in final.get("HEALTHCHECK", ""):
        errors.append("Dockerfile: HEALTHCHECK on /healthz missing")
    if final.get("ENTRYPOINT") != '["scoring-worker"]' or final.get("CMD") != '["run"]':
        errors.append('Dockerfile: want ENTRYPOINT ["scoring-worker"] and CMD ["run"]')
    env = " ".join(args for kw, args in final_all if kw == "ENV")
    for setting in (
        "SCORING_WORKER_METRICS_HOST=0.0.0.0",
        "SCORING_WORKER_METRICS_PORT=8000",
        "SCORING_WORKER_BUNDLE=/opt/bundles/penguins",
    ):
        if setting not in env:
            errors.append(f"Dockerfile: ENV {setting} missing in the final stage")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--compose-json", type=Path, help="output of docker-compose config --format json"
    )
    parser.add_argument(
        "--compose-avro-json",
        type=Path,
        help="output of docker-compose --profile avro config --format json",
    )
    args = parser.parse_args(argv)
    print(
        f"deploy-checks: {len(known_metrics())} metric families in "
        "METRIC_NAMES and CHALLENGER_METRIC_NAMES (worker.monitoring)"
    )
    errors = check_dashboard() + check_rules() + check_dockerfile()
    errors += alert_test_coverage(PROM / "tests" / "alerts_test.yml", PROM / "rules" / "alerts.yml")
    if args.compose_json:
        errors += check_compose(json.loads(args.compose_json.read_text()))
    if args.compose_avro_json:
        errors += check_compose_avro(json.loads(args.compose_avro_json.read_text()))
    for error in errors:
        print(f"  FAIL {error}", file=sys.stderr)
    print(f"deploy-checks: {'FAILED' if errors else 'ok'} ({len(errors)} problem(s))")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
