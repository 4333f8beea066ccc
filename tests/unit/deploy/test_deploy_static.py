"""Static checks of the deployment files: Dockerfile, compose, Prometheus rules, Grafana.

The same checks as ``scripts/static-checks``. The external tools (promtool, hadolint,
docker-compose) are installed by ``scripts/static-checks --install`` (the Makefile's
test target does it); a test needing a missing tool is skipped, except in CI
(``CI`` set), where a missing tool is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]
PROM = REPO / "deploy" / "prometheus"
PINNED = REPO / ".cache" / "bin"
# the pinned tools first: an older system docker-compose (Debian's 1.29) rejects `name:`
TOOLS_PATH = os.pathsep.join([str(PINNED), os.environ.get("PATH", "")])


def _load_checks() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "deploy_checks", REPO / "scripts" / "deploy_checks.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["deploy_checks"] = module
    spec.loader.exec_module(module)
    return module


checks = _load_checks()


def tool(name: str) -> str:
    path = shutil.which(name, path=TOOLS_PATH)
    if path is None:
        message = f"{name} not installed: run scripts/static-checks --install"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    """Success, or a message that names the binary that ran (which one PATH gave)."""
    assert proc.returncode == 0, (
        f"{proc.args[0]} (binary run) exited {proc.returncode}: {proc.args}\n"
        f"{proc.stdout}\n{proc.stderr}"
    )


@pytest.mark.parametrize("name", ["docker-compose", "hadolint", "promtool"])
def test_the_pinned_tools_come_first(name: str) -> None:
    found = tool(name)
    print(f"{name}: {found}")
    if (PINNED / name).exists():
        assert Path(found) == PINNED / name


@pytest.fixture(scope="module")
def compose_config() -> dict[str, object]:
    proc = run(tool("docker-compose"), "-f", "docker-compose.yml", "config", "--format", "json")
    assert_ok(proc)
    config: dict[str, object] = json.loads(proc.stdout)
    return config


# --- Dockerfile -------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    assert_ok(run(tool("hadolint"), "Dockerfile"))


def test_dockerfile_contract_and_non_root_user() -> None:
    assert checks.check_dockerfile() == []


def test_dockerfile_check_rejects_root_user(tmp_path: Path) -> None:
    text = (REPO / "Dockerfile").read_text().replace("USER 10001:10001", "USER root")
    (tmp_path / "Dockerfile").write_text(text)
    assert any("non-root" in e for e in checks.check_dockerfile(tmp_path / "Dockerfile"))


def test_dockerignore_keeps_the_context_small() -> None:
    text = (REPO / ".dockerignore").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "allow-list: exclude everything, then re-include"
    assert "!.venv" not in lines and "!tests/" not in lines


# --- compose ----------------------------------------------------------------------------


def test_compose_validates_against_the_compose_spec() -> None:
    assert_ok(run(tool("docker-compose"), "-f", "docker-compose.yml", "config", "--quiet"))


def test_compose_two_worker_replicas_in_order(compose_config: dict[str, object]) -> None:
    assert checks.check_compose(compose_config) == []


def test_compose_check_catches_a_broken_file(compose_config: dict[str, object]) -> None:
    broken = json.loads(json.dumps(compose_config))
    broken["services"]["worker"]["deploy"]["replicas"] = 1
    broken["services"]["worker"]["depends_on"]["kafka"]["condition"] = "service_started"
    del broken["services"]["kafka"]["healthcheck"]
    broken["services"]["grafana"]["image"] = "grafana/grafana:latest"
    errors = " ".join(checks.check_compose(broken))
    for fragment in ("replicas: 2", "depends_on", "no healthcheck", "grafana"):
        assert fragment in errors


def test_compose_avro_profile_registry_producer_and_worker() -> None:
    args = ("-f", "docker-compose.yml", "--profile", "avro", "config", "--format", "json")
    proc = run(tool("docker-compose"), *args)
    assert_ok(proc)
    config = json.loads(proc.stdout)
    assert checks.check_compose(config) == [] and checks.check_compose_avro(config) == []
    broken = json.loads(proc.stdout)
    broken["services"]["worker-avro"]["environment"]["SCORING_WORKER_OUTPUT_FORMAT"] = "json"
    del broken["services"]["schema-registry"]["healthcheck"]
    errors = " ".join(checks.check_compose_avro(broken))
    assert "read and write Avro" in errors and "healthcheck" in errors


def test_registry_dockerfile_passes_hadolint() -> None:
    assert_ok(run(tool("hadolint"), "deploy/schema-registry/Dockerfile"))


# --- Prometheus ---------------------------------------------------------------------------


def test_prometheus_configs_are_valid() -> None:
    assert_ok(
        run(
            tool("promtool"),
            "check",
            "config",
            *(str(PROM / f) for f in ("prometheus.yml", "prometheus-local.yml")),
        )
    )


def test_rules_are_valid() -> None:
    assert_ok(
        run(tool("promtool"), "check", "rules", *map(str, sorted((PROM / "rules").glob("*.yml"))))
    )


def test_rule_unit_tests_pass() -> None:
    """Recording-rule values and every alert firing / not firing (promtool test rules)."""
    assert_ok(run(tool("promtool"), "test", "rules", str(PROM / "tests" / "alerts_test.yml")))


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests, alerts = PROM / "tests" / "alerts_test.yml", PROM / "rules" / "alerts.yml"
    assert checks.alert_test_coverage(tests, alerts) == []
    assert len(checks.yaml_values(alerts.read_text(), "alert")) >= 9


def test_rule_parser_sees_every_rule() -> None:
    texts = [p.read_text() for p in (PROM / "rules").glob("*.yml")]
    count = sum(len(re.findall(r"^\s*- (?:record|alert):", t, re.M)) for t in texts)
    assert len(checks.rule_exprs()) == count


def test_rules_use_only_exported_metrics() -> None:
    assert checks.check_rules() == []


def _psi(live: dict[str, float], ref: dict[str, float]) -> float:
    """SPEC's PSI with the 1e-4 clamp; a bin without a reference counts as 0."""
    eps = 1e-4
    return sum(
        (max(p, eps) - max(ref.get(b, 0.0), eps))
        * math.log(max(p, eps) / max(ref.get(b, 0.0), eps))
        for b, p in live.items()
    )


@pytest.mark.parametrize(
    ("live", "ref", "expected_e12"),
    [
        ({"A": 0.5, "C": 0.0, "G": 0.5}, {"A": 0.4, "C": 0.2, "G": 0.4}, 1564049111925),
        ({"A": 0.25, "C": 0.25, "G": 0.5}, {"A": 0.4, "C": 0.2, "G": 0.4}, 103972077084),
        ({"A": 0.55, "C": 0.10, "G": 0.35}, {"A": 0.4, "C": 0.2, "G": 0.4}, 123759347355),
        (
            {"Biscoe": 0.4, "Dream": 0.3, "Torgersen": 0.2, "__unknown__": 0.1},
            {"Biscoe": 0.5, "Dream": 0.35, "Torgersen": 0.15},
            734490745116,
        ),
        (
            {"Biscoe": 0.2, "Dream": 0.3, "Torgersen": 0.5, "__unknown__": 0.0},
            {"Biscoe": 0.5, "Dream": 0.35, "Torgersen": 0.15, "__unknown__": 0.0},
            703985235068,
        ),
    ],
)
def test_rule_test_expectations_follow_the_psi_formula(
    live: dict[str, float], ref: dict[str, float], expected_e12: int
) -> None:
    """The values the promtool tests expect are SPEC's formula, not whatever PromQL gave."""
    assert round(_psi(live, ref) * 1e12) == expected_e12
    assert f"value: {expected_e12}" in (PROM / "tests" / "alerts_test.yml").read_text()


# --- Grafana ------------------------------------------------------------------------------


def test_dashboard_queries_reference_known_metrics() -> None:
    assert checks.check_dashboard() == []


def test_dashboard_covers_the_main_views() -> None:
    exprs = " ".join(e for _, e in checks.dashboard_exprs())
    for metric in (
        "scoring_events_consumed_total",
        "scoring_predictions_produced_total",
        "scoring_event_latency_seconds_bucket",
        "scoring_batch_size_bucket",
        "scoring_batch_duration_seconds_bucket",
        "scoring_consumer_lag",
        "scoring_events_rejected_total",
        "scoring_prediction_drift",
        "scoring_feature_drift",
        "scoring_feature_missing_ratio",
        "scoring:prediction_psi:fleet_1h",
        "scoring_bundle_info",
        "scoring_bundle_selfcheck_ok",
    ):
        assert metric in exprs, metric


def test_dashboard_check_catches_an_unknown_metric(tmp_path: Path) -> None:
    dash = json.loads(checks.DASHBOARD.read_text())
    dash["panels"][1]["targets"][0]["expr"] = 'sum(rate(scoring_event_consumed_total{job="x"}[5m]))'
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dash))
    assert any("scoring_event_consumed_total" in e for e in checks.check_dashboard(path))


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    provider = (REPO / "deploy/grafana/provisioning/dashboards/scoring-worker.yml").read_text()
    compose = (REPO / "docker-compose.yml").read_text()
    path = checks.yaml_values(provider, "path")[0]
    assert f"./deploy/grafana/dashboards:{path}:ro" in compose
    datasource = (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    assert checks.yaml_values(datasource, "url") == ["http://prometheus:9090"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval]))', {"a_bucket"}),
        ("x / ignoring (bin) group_left () (sum by (job) (x) > 0)", {"x"}),
        ("clamp_min(a:b:c, 1e-4) or b * 0 unless on (job) c offset 5m", {"a:b:c", "b", "c"}),
        ('histogram_quantile(0.99, sum(rate(h_bucket{le!="+Inf"}[5m])) by (le))', {"h_bucket"}),
        ("absent(up{job='w'} == 1)", {"up"}),
    ],
)
def test_promql_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert checks.promql_metric_names(expr) == names
