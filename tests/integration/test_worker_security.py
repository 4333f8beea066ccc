"""The worker on the broker's SASL_SSL listener (SCRAM-SHA-512, a test CA, ACLs).

Scores exactly once with its CA file; a wrong password, an untrusted certificate and a
principal without WRITE on the output topic each stop it with exit 3 and one clear line
well within the broker timeout; the password shows nowhere: not in the log lines, not in
/metrics, not in `bundle inspect` or `--help` run with it in the environment.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from kafka_broker import poll_until
from secure_broker import SecureBroker, secure_broker, untrusted_ca
from worker_harness import (
    SCORING_WORKER,
    WorkerProcess,
    cached_stream,
    demo_bundle,
    produce_stream,
    research_records_async,
)
from worker_verify import GroupWatch, assert_exactly_once, read_predictions, verify_predictions

# Until `--broker-timeout` lands (issue 15) the setting is read from the environment.
BROKER_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def secure() -> SecureBroker:
    return secure_broker()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_scores_exactly_once_over_sasl_ssl_and_never_shows_the_password(
    bootstrap: str, secure: SecureBroker, tmp_path: Path
) -> None:
    stream = cached_stream(3_000, seed=81, poison_rate=0.02)
    research = research_records_async(stream)
    topics = secure.topics(bootstrap)
    produce_stream(bootstrap, topics.input, stream)
    env = secure.env("scoring")
    password = env["SCORING_WORKER_KAFKA_SASL_PASSWORD"]
    port = _free_port()
    worker = WorkerProcess(
        secure.bootstrap, topics, tmp_path, "sasl", "--metrics-port", str(port), extra_env=env
    )
    try:
        ends = GroupWatch.ends(bootstrap, topics.input)
        GroupWatch(bootstrap, topics.group, topics.input, 2).wait_caught_up(ends, 180)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        code, _ = worker.stop()
    finally:
        worker.kill()
    log = worker.log_path.read_text()
    assert code == 0, log[-2000:]
    settings = worker.events("start")[0]["settings"]["kafka"]
    assert settings["sasl.password"] == "**********"
    assert settings["sasl.username"] == "scoring"
    records = read_predictions(bootstrap, topics.output, stream.valid)
    assert_exactly_once(verify_predictions(records, research.result()), stream.valid)
    assert "scoring_predictions_produced_total" in metrics
    shown = {"log": log, "metrics": metrics, **_other_outputs(env)}
    assert all(len(text) > 100 for text in shown.values()), shown
    assert [where for where, text in shown.items() if password in text] == []


def _other_outputs(env: dict[str, str]) -> dict[str, str]:
    """What `bundle inspect` and `--help` print with the secret in their environment."""
    full = {**os.environ, **env}
    commands = {
        "bundle inspect": ["bundle", "inspect", str(demo_bundle())],
        "bundle inspect --json": ["bundle", "inspect", str(demo_bundle()), "--json"],
        "--help": ["--help"],
        "run --help": ["run", "--help"],
    }
    out = {}
    for name, args in commands.items():
        done = subprocess.run(
            [SCORING_WORKER, *args], env=full, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        out[name] = done.stdout + done.stderr
    return out


@pytest.mark.parametrize("case", ["wrong-password", "untrusted-certificate", "no-write-acl"])
def test_security_failures_exit_3_with_one_clear_line(
    bootstrap: str, secure: SecureBroker, tmp_path: Path, case: str
) -> None:
    topics = secure.topics(bootstrap)
    produce_stream(bootstrap, topics.input, cached_stream(50, seed=82))
    env = {
        "wrong-password": secure.env("scoring", password="not-the-password"),
        "untrusted-certificate": secure.env("scoring", ca=untrusted_ca(tmp_path)),
        "no-write-acl": secure.env("scoring-noout"),
    }[case]
    expected = {
        "wrong-password": "invalid credentials",
        "untrusted-certificate": "certificate verify failed",
        "no-write-acl": f"needs ACL ALLOW WRITE on topic {topics.output}",
    }[case]
    env["SCORING_WORKER_BROKER_TIMEOUT"] = str(BROKER_TIMEOUT_S)
    worker = WorkerProcess(secure.bootstrap, topics, tmp_path, case, extra_env=env)
    try:
        worker.wait_event("start", 120)
        started = time.monotonic()
        code = poll_until(f"{case} to stop the worker", 120, worker.proc.poll)
        stopped_s = time.monotonic() - started
    finally:
        worker.kill()
    text = worker.log_path.read_text()
    errors = [line for line in text.splitlines() if line.startswith("scoring-worker: error:")]
    print(f"\nFIGURE {case}: exit {code} {stopped_s:.1f}s after start: {errors}")
    assert code == 3, text[-2000:]
    assert len(errors) == 1 and errors == text.splitlines()[-1:]
    assert expected in errors[0]
    assert stopped_s < BROKER_TIMEOUT_S, "stopped by the error, not by the broker timeout"
    assert env["SCORING_WORKER_KAFKA_SASL_PASSWORD"] not in text
