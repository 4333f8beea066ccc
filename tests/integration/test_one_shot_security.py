"""The one-shot commands (`record`, `publish`, `replay`, `topics create`) refused by the
broker (issue 28): a wrong SCRAM password, a CA that did not sign the broker's certificate,
mTLS without a client certificate. Each is one ``auth: ...`` line in our words, exit 3,
as soon as the broker refused (not ``did not answer within`` after the whole
``--broker-timeout``), and the password never shows."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from secure_broker import SecureBroker, secure_broker, untrusted_ca
from worker_harness import SCORING_WORKER, demo_bundle

BROKER_TIMEOUT_S = 90
"""Long beside a refusal's time (2-4 s quiet; the process start alone took 10-21 s at load 20-40),
so `took_s < BROKER_TIMEOUT_S / 2` tells a refusal from the broker timeout on a busy host."""
WRONG = "Not-The-Password-42"


@pytest.fixture(scope="module")
def secure() -> SecureBroker:
    return secure_broker()


def _command(name: str, secure: SecureBroker, tmp_path: Path) -> list[str]:
    topic = secure.prefixes["input"] + "one-shot"
    if name == "record":
        return ["record", "--topic", topic, "--output", str(tmp_path / "rec.jsonl")]
    if name == "publish":
        events = tmp_path / "events.jsonl"
        events.write_text('{"id": "1"}\n')
        return ["publish", "--topic", topic, "--input", str(events)]
    if name == "replay":
        out = ["--output", str(tmp_path / "out.jsonl")]
        return ["replay", "--bundle", str(demo_bundle()), "--topic", topic, *out]
    return ["topics", "create", "--topic", topic]


def _refusal(
    case: str, secure: SecureBroker, tmp_path: Path
) -> tuple[str, dict[str, str], list[str], str]:
    """Listener, environment, extra arguments, and what the error line must say."""
    if case == "wrong-password":
        env = secure.env("publisher", password=WRONG)
        return secure.bootstrap, env, [], "auth: _AUTHENTICATION"
    if case == "untrusted-certificate":
        env = secure.env("publisher", ca=untrusted_ca(tmp_path))
        return secure.bootstrap, env, [], "certificate verify failed"
    props = [a for p in secure.mtls_properties(False) for a in ("--kafka-property", p)]
    return secure.mtls["bootstrap"], {}, props, "refused this client's TLS certificate"


@pytest.mark.parametrize("command", ["record", "publish", "replay", "topics"])
@pytest.mark.parametrize("case", ["wrong-password", "untrusted-certificate", "no-client-cert"])
def test_a_refusal_is_one_auth_line_at_once(
    secure: SecureBroker, tmp_path: Path, command: str, case: str
) -> None:
    listener, env, extra, expected = _refusal(case, secure, tmp_path)
    args = [*_command(command, secure, tmp_path), "--bootstrap-servers", listener, *extra]
    args += ["--broker-timeout", str(BROKER_TIMEOUT_S)]
    started = time.monotonic()
    done = subprocess.run(
        [SCORING_WORKER, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=BROKER_TIMEOUT_S + 60,
    )
    took_s = time.monotonic() - started
    lines = done.stderr.splitlines()
    print(f"\nFIGURE {command} {case}: exit {done.returncode} in {took_s:.1f}s: {lines}")
    assert done.returncode == 3, done.stderr
    assert len(lines) == 1 and lines[0].startswith("scoring-worker: error:"), done.stderr
    assert expected in lines[0] and "did not answer" not in lines[0]
    assert took_s < BROKER_TIMEOUT_S / 2, "stopped by the refusal, not by the broker timeout"
    assert WRONG not in done.stdout + done.stderr


def _as(user: str, secure: SecureBroker, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCORING_WORKER, *args, "--bootstrap-servers", secure.bootstrap, "--broker-timeout", "20"],
        env={**os.environ, **secure.env(user)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_publish_names_the_acl_it_misses(
    bootstrap: str, secure: SecureBroker, tmp_path: Path
) -> None:
    """`reader` may DESCRIBE secure-out-* but has no transactional-id ACL (publish is one
    transaction) and cannot see secure-in-* at all (no DESCRIBE: not "does not exist")."""
    topics = secure.topics(bootstrap)
    events = tmp_path / "events.jsonl"
    events.write_text('{"id": "1"}\n')

    done = _as("reader", secure, "publish", "--topic", topics.output, "--input", str(events))
    lines = done.stderr.splitlines()
    assert done.returncode == 3 and len(lines) == 1, done.stderr
    assert "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in lines[0]
    assert (
        "needs ACL ALLOW WRITE and DESCRIBE on transactional-id scoring-worker-publish-"
        in (lines[0])
    )
    assert "KafkaError{" not in lines[0]

    done = _as("reader", secure, "publish", "--topic", topics.input, "--input", str(events))
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "may not see it (needs ACL ALLOW DESCRIBE on topic" in lines[0]
