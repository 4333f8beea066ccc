"""The worker on the broker's SASL_SSL listener (SCRAM-SHA-512, a test CA, ACLs) and on its
mTLS listener (SSL, a client certificate required).

Scores exactly once over each; a wrong password, an untrusted broker certificate, no client
certificate on the mTLS listener and a principal without WRITE on the output topic each
stop it with exit 3 and one clear line well within `--broker-timeout`; the password shows
nowhere: not in the log lines, not in /metrics, not in `bundle inspect` or `--help` run with
it in the environment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from kafka_broker import poll_until
from secure_broker import SecureBroker, secure_broker, untrusted_ca
from worker_harness import (
    FAST_GROUP,
    SCORING_WORKER,
    Topics,
    WorkerProcess,
    cached_stream,
    demo_bundle,
    produce_stream,
    research_records_async,
)
from worker_verify import GroupWatch, assert_exactly_once, read_predictions, verify_predictions

from harness.ports import free_port

BROKER_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def secure() -> SecureBroker:
    return secure_broker()


def _score_all(
    bootstrap: str,
    listener: str,
    topics: Topics,
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    kafka: Sequence[str] = (),
    events: int = 3_000,
) -> tuple[WorkerProcess, str]:
    """One worker on ``listener`` scores ``events`` (2% poison) exactly once, checked on
    the PLAINTEXT ``bootstrap`` against research ``score``: the worker and its /metrics."""
    stream = cached_stream(events, seed=81, poison_rate=0.02)
    research = research_records_async(stream)
    produce_stream(bootstrap, topics.input, stream)
    port = free_port()
    worker = WorkerProcess(
        listener, topics, tmp_path, "secure", "--metrics-port", str(port),
        kafka=[*FAST_GROUP, *kafka], extra_env=env,
    )  # fmt: skip
    try:
        ends = GroupWatch.ends(bootstrap, topics.input)
        GroupWatch(bootstrap, topics.group, topics.input, 2).wait_caught_up(ends, 180)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        code, _ = worker.stop()
    finally:
        worker.kill()
    assert code == 0, worker.log_path.read_text()[-2000:]
    records = read_predictions(bootstrap, topics.output, stream.valid)
    assert_exactly_once(verify_predictions(records, research.result()), stream.valid)
    assert "scoring_predictions_produced_total" in metrics
    return worker, metrics


def test_scores_exactly_once_over_sasl_ssl_and_never_shows_the_password(
    bootstrap: str, secure: SecureBroker, tmp_path: Path
) -> None:
    env = secure.env("scoring")
    password = env["SCORING_WORKER_KAFKA_SASL_PASSWORD"]
    worker, metrics = _score_all(
        bootstrap, secure.bootstrap, secure.topics(bootstrap), tmp_path, env
    )
    log = worker.log_path.read_text()
    settings = worker.events("start")[0]["settings"]["kafka"]
    assert settings["sasl.password"] == "**********"
    assert settings["sasl.username"] == "scoring"
    shown = {"log": log, "metrics": metrics, **_other_outputs(env)}
    assert all(len(text) > 100 for text in shown.values()), shown
    assert [where for where, text in shown.items() if password in text] == []


def test_scores_exactly_once_over_mtls(
    bootstrap: str, secure: SecureBroker, tmp_path: Path
) -> None:
    """The SSL listener requires a client certificate; its CN (scoring) is the principal the
    ACLs grant, so only a worker that presents it gets anywhere."""
    topics = secure.topics(bootstrap)
    props = secure.mtls_properties()
    worker, _ = _score_all(bootstrap, secure.mtls["bootstrap"], topics, tmp_path, kafka=props)
    settings = worker.events("start")[0]["settings"]["kafka"]
    assert settings["security.protocol"] == "SSL"
    assert settings["ssl.certificate.location"] == secure.mtls["certificate"]


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


FAILURES = [
    "wrong-password",
    "untrusted-certificate",
    "misnamed-certificate",
    "no-client-certificate",
    "no-write-acl",
]


def _unnamed_host(secure: SecureBroker) -> str:
    """A name that reaches the SASL_SSL listener but is not in the broker certificate's
    subjectAltName (IP 127.0.0.1, DNS localhost): this machine's host name."""
    host, _, port = secure.bootstrap.rpartition(":")
    name = socket.gethostname()
    try:
        resolves = socket.gethostbyname(name) == host
    except OSError:
        resolves = False
    if not resolves or name in ("localhost", host):
        pytest.skip(f"the host name {name!r} does not reach the broker at {host}")
    return f"{name}:{port}"


def _failing_worker(
    case: str, bootstrap: str, secure: SecureBroker, topics: Topics, tmp_path: Path
) -> tuple[WorkerProcess, str]:
    """A worker set up to fail as ``case`` says, and what its error line must contain."""
    listener, kafka, env = secure.bootstrap, list(FAST_GROUP), None
    if case == "wrong-password":
        env, expected = secure.env("scoring", password="not-the-password"), "invalid credentials"
    elif case == "untrusted-certificate":
        env, expected = (
            secure.env("scoring", ca=untrusted_ca(tmp_path)),
            "certificate verify failed",
        )
    elif case == "misnamed-certificate":  # the right CA, a name the certificate lacks
        listener, env = _unnamed_host(secure), secure.env("scoring")
        expected = "does not name"
    elif case == "no-client-certificate":
        listener, kafka = secure.mtls["bootstrap"], kafka + secure.mtls_properties(False)
        expected = "the broker refused this client's TLS certificate"
    else:
        env, expected = (
            secure.env("scoring-noout"),
            f"needs ACL ALLOW WRITE on topic {topics.output}",
        )
    timeout = ("--broker-timeout", str(BROKER_TIMEOUT_S))
    worker = WorkerProcess(listener, topics, tmp_path, case, *timeout, kafka=kafka, extra_env=env)
    return worker, expected


@pytest.mark.parametrize("case", FAILURES)
def test_security_failures_exit_3_with_one_clear_line(
    bootstrap: str, secure: SecureBroker, tmp_path: Path, case: str
) -> None:
    topics = secure.topics(bootstrap)
    produce_stream(bootstrap, topics.input, cached_stream(50, seed=82))
    worker, expected = _failing_worker(case, bootstrap, secure, topics, tmp_path)
    try:
        if case != "misnamed-certificate":  # that one is refused before the start line
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
    if case == "misnamed-certificate":  # the CA is right: not the setting to look at
        assert "ssl.ca.location" not in errors[0], errors[0]
    lines = text.splitlines()
    assert len(lines) == len(set(lines)), "repeated lines are folded"
    assert stopped_s < BROKER_TIMEOUT_S, "stopped by the error, not by the broker timeout"
    assert all(password not in text for password in secure.passwords.values())
