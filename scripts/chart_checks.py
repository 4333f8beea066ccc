"""Checks of the Helm chart deploy/helm/scoring-worker: the tools', then the project's rules.

Run by ``scripts/static-checks`` and by ``tests/unit/deploy/test_helm_chart.py``. For the default
values (rendered twice: without KEDA in the cluster, then with its and Prometheus-
Operator's APIs served) and for every realistic values file in the chart's ``ci/``:

* ``helm lint --strict`` (values.schema.json refuses unknown keys and wrong types);
* ``helm template``, each manifest checked by ``kubeconform -strict`` against Kubernetes'
  JSON schemas and the KEDA and Prometheus-Operator CRDs (``scripts/k8s_schemas.py``);
* the rules no schema states (``check_manifests``): replicas, the autoscaler's maximum
  and a surge pod never above the input topic's partitions; the grace period covers the
  worker's drain; the startup probe covers the self-check and the first assignment;
  liveness never on readiness; the restricted security context; no secret in a value;
* the chart's copy of the Prometheus rules equals deploy/prometheus/rules
  (``--sync-rules`` copies them).

    python scripts/chart_checks.py [--sync-rules]

Tools: helm and kubeconform from .cache/bin (scripts/install-helm-tools), schemas from
.cache/k8s-schemas.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "deploy" / "helm" / "scoring-worker"
RULES = REPO / "deploy" / "prometheus" / "rules"
CHART_RULES = CHART / "files" / "rules"
BIN = REPO / ".cache" / "bin"
SCHEMAS = REPO / ".cache" / "k8s-schemas"
SCHEMA_LOCATIONS = (
    str(SCHEMAS / "kubernetes" / "{{ .ResourceKind }}{{ .KindSuffix }}.json"),
    str(SCHEMAS / "crds" / "{{ .Group }}" / "{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"),
)
# the custom resources' APIs, as a cluster with KEDA and Prometheus-Operator serves them
CRD_APIS = (
    "keda.sh/v1alpha1/ScaledObject",
    "keda.sh/v1alpha1/TriggerAuthentication",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
)
# librdkafka's defaults (ms): a dead member's partitions move after the session timeout;
# its open transaction is aborted by the broker after the transaction timeout.
SESSION_TIMEOUT_MS = 45_000
TRANSACTION_TIMEOUT_MS = 60_000
SHUTDOWN_TIMEOUT_S = 30.0


def value_sets() -> list[tuple[str, list[str]]]:
    """(name, extra helm arguments) for every values set the chart is checked with."""
    api = [arg for a in CRD_APIS for arg in ("--api-versions", a)]
    sets = [("default", []), ("default+crds", api)]
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        sets.append((path.stem, ["-f", str(path), *api]))
    return sets


def tool(name: str) -> str:
    found = shutil.which(name, path=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    if found is None:
        raise FileNotFoundError(f"{name} not installed: run scripts/install-helm-tools")
    return found


def run(args: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=REPO, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def values_files(extra: Sequence[str]) -> list[str]:
    """The ``-f FILE`` pairs of a values set (``helm lint`` takes no --api-versions)."""
    return [arg for i, a in enumerate(extra) if a == "-f" for arg in (a, extra[i + 1])]


def helm_lint(extra: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    return run([tool("helm"), "lint", "--strict", str(CHART), *values_files(extra)])


def helm_template(extra: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    return run([tool("helm"), "template", "sw", str(CHART), "--namespace", "scoring", *extra])


def manifests(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def kubeconform(text: str) -> subprocess.CompletedProcess[str]:
    """kubeconform -strict on a multi-document YAML; every kind needs a schema."""
    locations = [arg for loc in SCHEMA_LOCATIONS for arg in ("-schema-location", loc)]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        return run([tool("kubeconform"), "-strict", "-summary", *locations, f.name])


# --- the project's rules on rendered manifests ------------------------------------------


def _of_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def _ms(env: dict[str, str | None], name: str, scope: str, default: int) -> int:
    for key in (f"SCORING_WORKER_KAFKA_{scope}_{name}", f"SCORING_WORKER_KAFKA_{name}"):
        if env.get(key):
            return int(str(env[key]))
    return default


def _is_secret_env(name: str) -> bool:
    sys.path.insert(0, str(REPO))
    try:
        from worker.kafka.properties import KAFKA_ENV_PREFIX, is_secret, kafka_key_from_env
    finally:
        sys.path.remove(str(REPO))
    return name.startswith(KAFKA_ENV_PREFIX) and is_secret(kafka_key_from_env(name))


def first_assignment_floor_s(env: dict[str, str | None]) -> int:
    """Seconds a restarted member may wait for partitions with stable offsets."""
    session = _ms(env, "SESSION_TIMEOUT_MS", "CONSUMER", SESSION_TIMEOUT_MS)
    txn = _ms(env, "TRANSACTION_TIMEOUT_MS", "PRODUCER", TRANSACTION_TIMEOUT_MS)
    if env.get("SCORING_WORKER_DELIVERY", "exactly-once") != "exactly-once":
        txn = 0
    return math.ceil((session + txn) / 1000)


def drain_s(env: dict[str, str | None]) -> int:
    """The worker's longest drain after SIGTERM: the batch in hand, then closing the
    consumer and the producer, each bounded by SCORING_WORKER_SHUTDOWN_TIMEOUT_S."""
    shutdown = float(env.get("SCORING_WORKER_SHUTDOWN_TIMEOUT_S") or SHUTDOWN_TIMEOUT_S)
    return math.ceil(3 * shutdown)


def check_manifests(docs: list[dict[str, Any]]) -> list[str]:
    """The chart's rules on its rendered manifests; one line per broken rule."""
    deployments = _of_kind(docs, "Deployment")
    if len(deployments) != 1:
        return [f"want one Deployment, found {len(deployments)}"]
    dep = deployments[0]
    notes = dep["metadata"].get("annotations") or {}
    try:
        partitions = int(notes["scoring-worker/input-topic-partitions"])
        self_check = int(notes["scoring-worker/self-check-seconds"])
    except (KeyError, ValueError):
        return [
            "Deployment: annotations scoring-worker/input-topic-partitions and "
            "scoring-worker/self-check-seconds missing"
        ]
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    workers = [c for c in pod["containers"] if c["name"] == "worker"]
    if not workers:
        return ["Deployment: no container named worker"]
    worker = workers[0]
    env = {e["name"]: e.get("value") for e in worker.get("env", [])}
    errors = _replica_errors(docs, spec, partitions)
    grace, drain = pod.get("terminationGracePeriodSeconds", 30), drain_s(env)
    if grace < drain:
        errors.append(
            f"terminationGracePeriodSeconds={grace} is shorter than the worker's drain "
            f"({drain} s = 3 x SCORING_WORKER_SHUTDOWN_TIMEOUT_S)"
        )
    errors += _probe_errors(worker, env, self_check)
    errors += _security_errors(pod, worker)
    errors += _secret_errors(docs, worker)
    if worker.get("args") != ["run"]:
        errors.append(f"worker args must be ['run'], are {worker.get('args')}")
    ids = [e for e in worker.get("env", []) if e["name"] == "SCORING_WORKER_INSTANCE_ID"]
    if not ids or ids[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != (
        "metadata.name"
    ):
        errors.append("SCORING_WORKER_INSTANCE_ID must come from the pod's name (unique)")
    if not _of_kind(docs, "PodDisruptionBudget"):
        errors.append("no PodDisruptionBudget")
    for svc in _of_kind(docs, "Service"):
        if not svc["spec"].get("publishNotReadyAddresses"):
            errors.append(f"Service {svc['metadata']['name']}: unready workers not scraped")
    return errors


def _replica_errors(docs: list[dict[str, Any]], spec: dict[str, Any], partitions: int) -> list[str]:
    counts = []
    if "replicas" in spec:
        counts.append(("Deployment replicas", int(spec["replicas"])))
    for so in _of_kind(docs, "ScaledObject"):
        counts.append(("ScaledObject maxReplicaCount", int(so["spec"].get("maxReplicaCount", 100))))
    for hpa in _of_kind(docs, "HorizontalPodAutoscaler"):
        counts.append(("HorizontalPodAutoscaler maxReplicas", int(hpa["spec"]["maxReplicas"])))
    errors = [
        f"{what}={n} is above the input topic's {partitions} partitions"
        for what, n in counts
        if n > partitions
    ]
    if len(counts) > 2 or (
        _of_kind(docs, "ScaledObject") and _of_kind(docs, "HorizontalPodAutoscaler")
    ):
        errors.append("two autoscalers for one Deployment (KEDA makes its own HPA)")
    surge = spec.get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", "25%")
    if not isinstance(surge, int):
        errors.append(f"maxSurge must be a number of pods, is {surge!r}")
    elif counts and max(n for _, n in counts) + surge > partitions:
        errors.append(
            f"{max(n for _, n in counts)} replicas + maxSurge {surge} is above the "
            f"{partitions} partitions: the surge pod gets none and the rollout stalls"
        )
    return errors


def _probe_errors(worker: dict[str, Any], env: dict[str, str | None], self_check: int) -> list[str]:
    errors = []
    probes = {k: worker.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    want = {"startupProbe": "/readyz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for kind, path in want.items():
        probe = probes[kind]
        got = (probe or {}).get("httpGet", {}).get("path")
        if got != path:
            errors.append(f"{kind} must GET {path}, is {got}")
    startup = probes["startupProbe"]
    if startup:
        budget = startup.get("initialDelaySeconds", 0) + startup.get(
            "periodSeconds", 10
        ) * startup.get("failureThreshold", 3)
        need = self_check + first_assignment_floor_s(env)
        if budget < need:
            errors.append(
                f"startupProbe allows {budget} s, start-up may take {need} s (self-check "
                f"{self_check} s + session and transaction timeouts): liveness would kill "
                "a worker still starting"
            )
    return errors


def _security_errors(pod: dict[str, Any], worker: dict[str, Any]) -> list[str]:
    psc, csc = pod.get("securityContext") or {}, worker.get("securityContext") or {}
    errors = []
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        errors.append("securityContext: runAsNonRoot missing")
    if csc.get("readOnlyRootFilesystem") is not True:
        errors.append("securityContext: readOnlyRootFilesystem must be true")
    if csc.get("allowPrivilegeEscalation") is not False:
        errors.append("securityContext: allowPrivilegeEscalation must be false")
    if (csc.get("capabilities") or {}).get("drop") != ["ALL"]:
        errors.append("securityContext: capabilities must drop ALL")
    seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        errors.append("securityContext: seccompProfile RuntimeDefault missing")
    writable = [v["name"] for v in pod.get("volumes", []) if "emptyDir" in v]
    if writable:
        errors.append(f"writable emptyDir volumes {writable}: the worker writes nothing")
    for mount in worker.get("volumeMounts", []):
        if not mount.get("readOnly"):
            errors.append(f"volume {mount['name']} mounted writable")
    return errors


def _secret_errors(docs: list[dict[str, Any]], worker: dict[str, Any]) -> list[str]:
    errors = [f"renders a Secret {d['metadata']['name']}" for d in _of_kind(docs, "Secret")]
    for e in worker.get("env", []):
        if "value" in e and _is_secret_env(e["name"]):
            errors.append(f"env {e['name']} holds a secret as a value: use secretKeyRef")
    return errors


def rule_files_drift() -> list[str]:
    """The chart's files/rules must be byte-for-byte deploy/prometheus/rules."""
    src = {p.name: p.read_bytes() for p in RULES.glob("*.yml")}
    dst = {p.name: p.read_bytes() for p in CHART_RULES.glob("*.yml")}
    errors = [f"{CHART_RULES.relative_to(REPO)}/{n} missing" for n in sorted(src.keys() - dst)]
    errors += [f"{CHART_RULES.relative_to(REPO)}/{n} extra" for n in sorted(dst.keys() - src)]
    errors += [
        f"{CHART_RULES.relative_to(REPO)}/{n} differs from deploy/prometheus/rules/{n}"
        for n in sorted(src.keys() & dst.keys())
        if src[n] != dst[n]
    ]
    return [e + ": run python scripts/chart_checks.py --sync-rules" for e in errors]


def sync_rules() -> None:
    CHART_RULES.mkdir(parents=True, exist_ok=True)
    for old in CHART_RULES.glob("*.yml"):
        old.unlink()
    for path in sorted(RULES.glob("*.yml")):
        shutil.copyfile(path, CHART_RULES / path.name)


def check_value_set(name: str, extra: Sequence[str]) -> list[str]:
    errors = []
    lint = helm_lint(extra)
    if lint.returncode != 0:
        errors.append(f"{name}: helm lint --strict failed:\n{lint.stdout}{lint.stderr}")
    rendered = helm_template(extra)
    if rendered.returncode != 0:
        return [*errors, f"{name}: helm template failed: {rendered.stderr.strip()}"]
    conform = kubeconform(rendered.stdout)
    print(f"  {name}: kubeconform {conform.stdout.strip().splitlines()[-1:]}")
    if conform.returncode != 0:
        errors.append(f"{name}: kubeconform -strict failed:\n{conform.stdout}{conform.stderr}")
    errors += [f"{name}: {e}" for e in check_manifests(manifests(rendered.stdout))]
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sync-rules", action="store_true", help="copy the rule files first")
    args = parser.parse_args(argv)
    if args.sync_rules:
        sync_rules()
    errors = rule_files_drift()
    for name, extra in value_sets():
        errors += check_value_set(name, extra)
    for error in errors:
        print(f"  FAIL {error}", file=sys.stderr)
    print(f"chart-checks: {'FAILED' if errors else 'ok'} ({len(errors)} problem(s))")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
