"""The Helm chart's pod, as Kubernetes would start it, against the real broker.

The worker container of ``helm template`` (default values, the test's topics) runs with
exactly the environment the chart renders, the instance id resolved from the pod's name,
and the restricted pod's filesystem: the root, /tmp and the checkout mounted read-only
(a private mount namespace, ``unshare -m``), no writable volume. It must pass the
startup probe's target (``/readyz``), score the events, and drain on
SIGTERM well within the grace period the chart derived. Needs root (mount namespaces),
``unshare`` and helm (scripts/install-helm-tools); skipped without them, except in CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka_broker import TopicFactory, poll_until, unique_topic
from worker_harness import demo_bundle, make_stream, produce_stream

from harness.ports import free_port

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import chart_checks  # noqa: E402

EVENTS = 300


def _need(ok: bool, message: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def _produced(port: int) -> float | None:
    status, text = _get(f"http://127.0.0.1:{port}/metrics")
    for line in text.splitlines() if status == 200 else []:
        if line.startswith("scoring_predictions_produced_total "):
            value = float(line.split()[1])
            return value if value >= EVENTS else None
    return None


def test_chart_pod_starts_scores_and_drains_on_a_read_only_root(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    _need(os.geteuid() == 0 and shutil.which("unshare") is not None, "needs root and unshare")
    try:
        chart_checks.tool("helm")
    except FileNotFoundError as exc:
        _need(False, str(exc))
    topics = [topic_factory(partitions=2) for _ in range(3)]
    port = free_port()
    values: dict[str, Any] = {
        "settings": {
            "SCORING_WORKER_BOOTSTRAP_SERVERS": bootstrap,
            "SCORING_WORKER_INPUT_TOPIC": topics[0],
            "SCORING_WORKER_OUTPUT_TOPIC": topics[1],
            "SCORING_WORKER_DLQ_TOPIC": topics[2],
            "SCORING_WORKER_GROUP_ID": unique_topic("it-group"),
            "SCORING_WORKER_SHUTDOWN_TIMEOUT_S": 10,
        },
        "bundle": {"path": str(demo_bundle())},
        "metrics": {"port": port},
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    rendered = chart_checks.helm_template(["-f", str(tmp_path / "values.yaml")])
    assert rendered.returncode == 0, rendered.stderr
    docs = chart_checks.manifests(rendered.stdout)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert not pod.get("volumes")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1"}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = "sw-scoring-worker-7c9f8-x2x4q"
    produce_stream(bootstrap, topics[0], make_stream(tmp_path, EVENTS, seed=31))

    mounts = " ".join(f"{m}" for m in ("/", "/tmp", str(REPO)))
    script = (
        f"for m in {mounts}; do mount --bind $m $m; mount -o remount,ro,bind $m; done; "
        "if touch /tmp/.sw-writable 2>/dev/null; then echo 'still writable' >&2; exit 99; fi; "
        f"exec {Path(sys.executable).parent / 'scoring-worker'} {' '.join(container['args'])}"
    )
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def readyz() -> bool | None:
        if proc.poll() is not None:  # a mount refused, or the worker exited at start
            log.flush()
            pytest.fail(f"exited {proc.returncode}: {(tmp_path / 'worker.log').read_text()}")
        return _get(f"http://127.0.0.1:{port}/readyz")[0] == 200 or None

    try:
        ready = poll_until("/readyz answers 200 (the startup probe)", 120, readyz)
        assert ready
        poll_until(f"{EVENTS} predictions produced", 120, lambda: _produced(port))
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=pod["terminationGracePeriodSeconds"])
        drained = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "worker.log").read_text()
    assert code == 0, text[-3000:]
    assert drained < chart_checks.drain_s(env), (drained, text[-2000:])
    assert '"event":"stop"' in text and '"instance":"sw-scoring-worker-7c9f8-x2x4q"' in text
