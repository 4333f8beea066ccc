"""The Helm chart deploy/helm/scoring-worker: the tools' checks and the project's rules.

The same checks as ``scripts/chart_checks.py`` (run by ``scripts/static-checks``), and the
broken charts they must refuse. helm, kubeconform and the schemas are installed by
``scripts/install-helm-tools`` (``make deploy-tools``); a test needing them is skipped
when they are missing, except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from worker.cli.live import run as run_command
from worker.kafka.properties import ENV_PREFIX
from worker.live.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[3]


def _load_checks() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "chart_checks", REPO / "scripts" / "chart_checks.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["chart_checks"] = module
    spec.loader.exec_module(module)
    return module


checks = _load_checks()
CHART = checks.CHART
VALUE_SETS = dict(checks.value_sets())


@pytest.fixture(scope="module")
def tools() -> None:
    try:
        checks.tool("helm")
        checks.tool("kubeconform")
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    if not (checks.SCHEMAS / "kubernetes" / "deployment-apps-v1.json").exists():
        message = "schemas missing: run scripts/install-helm-tools"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def render(extra: list[str]) -> list[dict[str, Any]]:
    proc = checks.helm_template(extra)
    assert proc.returncode == 0, proc.stderr
    docs: list[dict[str, Any]] = checks.manifests(proc.stdout)
    return docs


def values_file(tmp_path: Path, values: dict[str, Any]) -> list[str]:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["-f", str(path)]


def refused(tmp_path: Path, values: dict[str, Any], *extra: str) -> str:
    """helm template must fail on these values; returns its error output."""
    proc = checks.helm_template([*values_file(tmp_path, values), *extra])
    assert proc.returncode != 0, f"accepted: {values}"
    text: str = proc.stderr
    return text


def _kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, [d["kind"] for d in docs]
    return found[0]


def _worker(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = _kind(docs, "Deployment")["spec"]["template"]["spec"]
    container: dict[str, Any] = pod["containers"][0]
    return container


# --- the tools on every values set --------------------------------------------------------


def test_there_are_realistic_values_files() -> None:
    assert len(VALUE_SETS) >= 5, VALUE_SETS


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict(tools: None, name: str) -> None:
    proc = checks.helm_lint(VALUE_SETS[name])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_manifests_pass_kubeconform_strict(tools: None, name: str) -> None:
    rendered = checks.helm_template(VALUE_SETS[name])
    assert rendered.returncode == 0, rendered.stderr
    proc = checks.kubeconform(rendered.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_manifests_keep_the_project_rules(tools: None, name: str) -> None:
    assert checks.check_manifests(render(VALUE_SETS[name])) == []


def test_kubeconform_refuses_an_unknown_field_in_a_custom_resource(tools: None) -> None:
    """The CRD schemas are strict: a misspelt ScaledObject field is an error, not ignored."""
    docs = render(VALUE_SETS["keda-sasl-tls-values"])
    so = _kind(docs, "ScaledObject")
    so["spec"]["maxReplicas"] = so["spec"].pop("maxReplicaCount")
    proc = checks.kubeconform(yaml.safe_dump(so))
    assert proc.returncode != 0 and "maxReplicas" in proc.stdout, proc.stdout


def test_kubeconform_refuses_an_unknown_field_in_a_deployment(tools: None) -> None:
    dep = _kind(render([]), "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    proc = checks.kubeconform(yaml.safe_dump(dep))
    assert proc.returncode != 0 and "livenesProbe" in proc.stdout, proc.stdout


# --- what each values set renders ---------------------------------------------------------


def test_autoscaler_is_keda_when_the_cluster_serves_it_else_a_cpu_hpa(tools: None) -> None:
    plain = {d["kind"] for d in render(VALUE_SETS["default"])}
    with_keda = {d["kind"] for d in render(VALUE_SETS["default+crds"])}
    assert "HorizontalPodAutoscaler" in plain and "ScaledObject" not in plain
    assert "ScaledObject" in with_keda and "HorizontalPodAutoscaler" not in with_keda


def test_keda_trigger_scales_the_workers_group_on_lag_with_secrets_by_reference(
    tools: None,
) -> None:
    docs = render(VALUE_SETS["keda-sasl-tls-values"])
    trigger = _kind(docs, "ScaledObject")["spec"]["triggers"][0]
    env = {e["name"]: e for e in _worker(docs)["env"]}
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["consumerGroup"] == env["SCORING_WORKER_GROUP_ID"]["value"] == "fraud-scoring"
    assert meta["topic"] == env["SCORING_WORKER_INPUT_TOPIC"]["value"]
    assert meta["bootstrapServers"] == env["SCORING_WORKER_BOOTSTRAP_SERVERS"]["value"]
    assert (meta["lagThreshold"], meta["activationLagThreshold"]) == ("20000", "500")
    assert (meta["sasl"], meta["tls"], meta["allowIdleConsumers"]) == (
        "scram_sha512",
        "enable",
        "false",
    )
    auth = _kind(docs, "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "username": ("fraud-scoring-kafka-user", "username"),
        "password": ("fraud-scoring-kafka-user", "password"),
        "ca": ("kafka-cluster-ca", "ca.crt"),
    }
    password = env["SCORING_WORKER_KAFKA_SASL_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == {
        "name": "fraud-scoring-kafka-user",
        "key": "password",
    }
    assert env["SCORING_WORKER_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"


def test_grace_period_is_derived_from_the_shutdown_timeout(tools: None) -> None:
    for name, want in (("default", 3 * 30 + 10), ("fixed-image-volume-values", 3 * 60 + 10)):
        pod = _kind(render(VALUE_SETS[name]), "Deployment")["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] == want, name


def test_startup_probe_covers_self_check_and_first_assignment(tools: None) -> None:
    probe = _worker(render([]))["startupProbe"]
    # self-check 120 s + first assignment 120 s, 5 s apart
    assert probe["periodSeconds"] * probe["failureThreshold"] == 240


def test_bundle_sources_mount_read_only_and_pin_a_digest(tools: None) -> None:
    pvc = render(VALUE_SETS["hpa-pvc-values"])
    pod = _kind(pvc, "Deployment")["spec"]["template"]["spec"]
    bundle = next(v for v in pod["volumes"] if v["name"] == "bundle")
    assert bundle["persistentVolumeClaim"] == {"claimName": "scoring-bundles", "readOnly": True}
    init = pod["initContainers"][0]
    assert init["args"] == ["/opt/bundles/clicks", checks_digest(pvc)]
    image = _kind(render(VALUE_SETS["fixed-image-volume-values"]), "Deployment")
    volume = image["spec"]["template"]["spec"]["volumes"][0]
    assert "@sha256:" in volume["image"]["reference"]
    assert "@sha256:" in image["spec"]["template"]["spec"]["containers"][0]["image"]


def checks_digest(docs: list[dict[str, Any]]) -> str:
    values = yaml.safe_load((CHART / "ci" / "hpa-pvc-values.yaml").read_text())
    digest: str = values["bundle"]["digest"]
    return digest


def test_rendered_environment_is_accepted_by_the_worker(
    tools: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Deployment's env, as the pod would see it, parses with the worker's settings."""
    for name in VALUE_SETS:
        env = {
            e["name"]: e.get("value", "from-a-secret")
            for e in _worker(render(VALUE_SETS[name]))["env"]
        }
        env["SCORING_WORKER_INSTANCE_ID"] = "sw-7d9c-abcde"
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = WorkerSettings()
        assert settings.input_topic == env["SCORING_WORKER_INPUT_TOPIC"], name
        assert settings.metrics_port == 8000 and settings.metrics_host == "0.0.0.0"


def test_settings_schema_names_every_worker_setting() -> None:
    """Every environment name `scoring-worker run` reads is in values.schema.json: a
    setting (typed) or one the chart sets itself (refused in settings)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    props = schema["properties"]["settings"]["properties"]
    names = {p.envvar for p in run_command.params if isinstance(p.envvar, str)}
    for field, info in WorkerSettings.model_fields.items():
        alias = info.validation_alias
        names.add(alias if isinstance(alias, str) else ENV_PREFIX + field.upper())
    names -= {
        ENV_PREFIX + "KAFKA",  # SCORING_WORKER_KAFKA_<PROPERTY>, one per property
        ENV_PREFIX + "DLQ_MAX_MESSAGE_BYTES",  # read from the broker, not a setting
    }
    names.add(ENV_PREFIX + "DEBUG")
    assert names - props.keys() == set()


def test_prometheus_rule_carries_every_rule_of_deploy_prometheus(tools: None) -> None:
    rule = _kind(render(VALUE_SETS["keda-sasl-tls-values"]), "PrometheusRule")
    want = []
    for path in sorted(checks.RULES.glob("*.yml")):
        want += yaml.safe_load(path.read_text())["groups"]
    assert rule["spec"]["groups"] == want


def test_chart_rules_are_the_deploy_prometheus_rules() -> None:
    assert checks.rule_files_drift() == []


def test_rule_drift_is_caught(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy_dir = tmp_path / "rules"
    copy_dir.mkdir()
    for path in checks.RULES.glob("*.yml"):
        (copy_dir / path.name).write_bytes(path.read_bytes())
    (copy_dir / "alerts.yml").write_text((copy_dir / "alerts.yml").read_text() + "\n# edit\n")
    monkeypatch.setattr(checks, "CHART_RULES", copy_dir)
    monkeypatch.setattr(checks, "REPO", tmp_path)
    assert any("alerts.yml differs" in e for e in checks.rule_files_drift())


# --- broken charts are refused ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"replicaCont": 2}, "replicaCont"),  # a typo at the top
        ({"autoscaling": {"keda": {"lagTreshold": 10}}}, "lagTreshold"),  # nested typo
        ({"settings": {"SCORING_WORKER_INPUT_TOPC": "x"}}, "SCORING_WORKER_INPUT_TOPC"),
        ({"replicaCount": "two"}, "replicaCount"),  # wrong type
        ({"settings": {"SCORING_WORKER_MAX_BATCH_EVENTS": "lots"}}, "MAX_BATCH_EVENTS"),
        ({"settings": {"SCORING_WORKER_DELIVERY": "exactly-twice"}}, "DELIVERY"),
        ({"kafka": {"sasl": {"enabled": "yes"}}}, "enabled"),
        ({"settings": {"SCORING_WORKER_KAFKA_SASL_PASSWORD": "hunter2"}}, "SASL_PASSWORD"),
        ({"settings": {"SCORING_WORKER_INSTANCE_ID": "w1"}}, "INSTANCE_ID"),
        ({"image": {"digest": "sha256:abc"}}, "digest"),
    ],
)
def test_values_schema_refuses(
    tools: None, tmp_path: Path, values: dict[str, Any], fragment: str
) -> None:
    error = refused(tmp_path, values)
    assert "values don't meet the specifications of the schema" in error, error
    assert fragment in error, error
    assert "hunter2" not in error  # a refused secret is not echoed back


def test_replicas_above_partitions_are_refused(tools: None, tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        {"autoscaling": {"enabled": False}, "replicaCount": 6, "strategy": {"maxSurge": 0}},
    )
    assert "6 replicas (replicaCount) is above kafka.inputTopicPartitions=4" in error


def test_autoscaling_above_partitions_is_refused(tools: None, tmp_path: Path) -> None:
    error = refused(tmp_path, {"autoscaling": {"maxReplicas": 8}})
    assert "8 replicas (autoscaling.maxReplicas) is above kafka.inputTopicPartitions=4" in error


def test_a_surge_pod_beyond_the_partitions_is_refused(tools: None, tmp_path: Path) -> None:
    error = refused(tmp_path, {"strategy": {"maxSurge": 1}})
    assert "strategy.maxSurge=1 is above kafka.inputTopicPartitions=4" in error


def test_grace_period_shorter_than_the_drain_is_refused(tools: None, tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        {
            "settings": {"SCORING_WORKER_SHUTDOWN_TIMEOUT_S": 40},
            "drain": {"terminationGracePeriodSeconds": 60},
        },
    )
    assert "terminationGracePeriodSeconds=60 is shorter than the worker's drain (120 s" in error


def test_startup_budget_below_session_and_transaction_timeouts_is_refused(
    tools: None, tmp_path: Path
) -> None:
    error = refused(tmp_path, {"probes": {"startup": {"firstAssignmentSeconds": 30}}})
    assert "firstAssignmentSeconds=30 is below 105 s" in error


def test_sasl_without_a_secret_is_refused(tools: None, tmp_path: Path) -> None:
    error = refused(tmp_path, {"kafka": {"sasl": {"enabled": True}}})
    assert "kafka.sasl.existingSecret" in error


def test_rule_checks_catch_a_broken_rendering(tools: None) -> None:
    """The rules hold on the manifests too, whatever a template edit does to them."""
    good = render(VALUE_SETS["default+crds"])
    broken = copy.deepcopy(good)
    dep = _kind(broken, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    dep["spec"]["replicas"] = 6
    _kind(broken, "ScaledObject")["spec"]["maxReplicaCount"] = 8
    pod["terminationGracePeriodSeconds"] = 30
    worker = pod["containers"][0]
    worker["startupProbe"]["failureThreshold"] = 3
    worker["livenessProbe"]["httpGet"]["path"] = "/readyz"
    worker["securityContext"]["readOnlyRootFilesystem"] = False
    worker["env"].append({"name": "SCORING_WORKER_KAFKA_SASL_PASSWORD", "value": "hunter2"})
    pod["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    errors = "\n".join(checks.check_manifests(broken))
    for fragment in (
        "Deployment replicas=6 is above the input topic's 4 partitions",
        "ScaledObject maxReplicaCount=8 is above",
        "terminationGracePeriodSeconds=30 is shorter than the worker's drain (90 s",
        "startupProbe allows 15 s, start-up may take 225 s",
        "livenessProbe must GET /healthz",
        "readOnlyRootFilesystem",
        "SCORING_WORKER_KAFKA_SASL_PASSWORD holds a secret",
        "emptyDir",
    ):
        assert fragment in errors, errors
    assert checks.check_manifests(good) == []
