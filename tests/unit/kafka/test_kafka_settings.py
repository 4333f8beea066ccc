"""One Kafka configuration for every command that connects (`run`, `replay`, `record`,
`publish`, `topics create`): the same environment, the same property refusals, the same
scoping, the same Schema Registry options and one meaning of ``--broker-timeout``
(0: never give up)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from schemas.errors import RuntimeFailure
from worker.kafka.connection import Connection
from worker.kafka.properties import ENV_PREFIX
from worker.kafka.settings import KafkaSettings, deadline_of
from worker.live.settings import WorkerSettings

SCORING_WORKER = str(Path(sys.executable).parent / "scoring-worker")
NOWHERE = "127.0.0.1:1"  # nothing listens: connection refused at once
STILL_WAITING_S = 4.0
"""How long a command given ``--broker-timeout 0`` must still be waiting for no broker."""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def _commands(bundle: Path, tmp_path: Path, *kafka: str) -> dict[str, list[str]]:
    events = tmp_path / "events.jsonl"
    events.write_text('{"a": 1}\n')
    servers = ["--bootstrap-servers", NOWHERE, *kafka]
    return {
        "run": ["run", "--bundle", str(bundle), *servers, "--input-topic", "in",
                "--output-topic", "out", "--no-dlq"],
        "replay": ["replay", "--bundle", str(bundle), *servers, "--topic", "t",
                   "--output", str(tmp_path / "p.jsonl")],
        "record": ["record", *servers, "--topic", "t", "--output", str(tmp_path / "r.jsonl")],
        "publish": ["publish", *servers, "--topic", "t", "--input", str(events)],
        "topics create": ["topics", "create", *servers, "--topic", "t"],
    }  # fmt: skip


def _run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    done = subprocess.run(
        [SCORING_WORKER, *args], capture_output=True, text=True, timeout=180,
        env={**base, **(env or {})},
    )  # fmt: skip
    return done.returncode, done.stderr


# --- the settings themselves ---------------------------------------------------------------


def test_run_s_settings_are_the_kafka_settings_plus_its_own() -> None:
    assert issubclass(WorkerSettings, KafkaSettings)
    kafka_fields = set(KafkaSettings.model_fields)
    assert kafka_fields <= set(WorkerSettings.model_fields)
    assert {"bootstrap_servers", "broker_timeout_s", "kafka", "schema_registry_url"} <= (
        kafka_fields
    )
    # the one difference: `run` waits longer by default
    assert KafkaSettings(bootstrap_servers="k").broker_timeout_s == 30
    assert WorkerSettings(bundle="b", bootstrap_servers="k", input_topic="i", output_topic="o")
    assert WorkerSettings.model_fields["broker_timeout_s"].default == 300


def test_the_environment_is_read_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_WORKER_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("SCORING_WORKER_KAFKA_PRODUCER_LINGER_MS", "7")
    monkeypatch.setenv("SCORING_WORKER_BROKER_TIMEOUT", "12")
    one_shot = KafkaSettings(bootstrap_servers="k")
    live = WorkerSettings(bundle="b", bootstrap_servers="k", input_topic="i", output_topic="o")
    for s in (one_shot, live):
        assert isinstance(s.kafka["sasl.password"], SecretStr)
        assert s.kafka_properties("producer")["linger.ms"] == "7"
        assert "linger.ms" not in s.kafka_properties("consumer")
        assert s.broker_timeout_s == 12
        assert "hunter2" not in repr(s) and "hunter2" not in str(s.masked())


def test_options_override_the_environment_property_by_property(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCORING_WORKER_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("SCORING_WORKER_KAFKA_LINGER_MS", "1")
    s = KafkaSettings(bootstrap_servers="k", kafka={"linger.ms": "9"})
    assert s.kafka == {"security.protocol": "SSL", "linger.ms": "9"}


def test_a_connection_scopes_properties_as_run_does() -> None:
    kafka: dict[str, Any] = {
        "security.protocol": "SSL",
        "consumer.fetch.min.bytes": "5",
        "producer.linger.ms": "3",
    }
    conn = Connection(KafkaSettings(bootstrap_servers="k", kafka=kafka))
    live = WorkerSettings(
        bundle="b", bootstrap_servers="k", input_topic="i", output_topic="o", kafka=kafka
    )
    consumer = conn.config("consumer")
    assert consumer["fetch.min.bytes"] == "5" and "linger.ms" not in consumer
    assert conn.config("producer")["linger.ms"] == "3"
    admin = conn.config(None)
    assert admin["security.protocol"] == "SSL"
    assert "fetch.min.bytes" not in admin and "linger.ms" not in admin
    assert live.kafka_properties("consumer") == conn.settings.kafka_properties("consumer")
    assert live.admin_config() == conn.settings.admin_config()


def test_registry_options_without_a_url_are_refused_by_the_settings() -> None:
    s = KafkaSettings(bootstrap_servers="k", schema_registry_ca=Path("ca.pem"))
    with pytest.raises(ValueError, match="need --schema-registry-url"):
        s.registry_settings()
    secret = KafkaSettings(
        bootstrap_servers="k",
        schema_registry_url="https://u:pw@r:8081",
        schema_registry_basic_auth=SecretStr("user:hunter2"),
    )
    registry = secret.registry_settings()
    assert registry is not None and registry.url == "https://u:pw@r:8081"
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret.masked())
    assert "pw" not in str(secret.masked()["schema_registry_url"])


# --- one meaning of --broker-timeout -------------------------------------------------------


def test_zero_is_never_for_every_deadline() -> None:
    assert deadline_of(0) == math.inf
    assert deadline_of(5) <= time.monotonic() + 5
    never = KafkaSettings(bootstrap_servers="k", broker_timeout_s=0)
    assert never.never_give_up and never.request_timeout_s > 0
    assert Connection(never).deadline() == math.inf
    with pytest.raises(ValueError):
        KafkaSettings(bootstrap_servers="k", broker_timeout_s=-1)


class _SilentThenAnswering:
    """A client whose metadata requests time out ``silent`` times, then are answered."""

    def __init__(self, silent: int) -> None:
        self.silent = silent
        self.asked = 0

    def list_topics(self, timeout: float) -> None:
        self.asked += 1
        if self.asked <= self.silent:
            raise RuntimeError("_TRANSPORT")

    def poll(self, _timeout: float) -> None:
        return None


def test_reach_with_zero_waits_until_the_broker_answers() -> None:
    client = _SilentThenAnswering(silent=5)
    Connection(KafkaSettings(bootstrap_servers="k", broker_timeout_s=0)).reach(client, "x")
    assert client.asked == 6


def test_reach_with_a_timeout_gives_up() -> None:
    client = _SilentThenAnswering(silent=10**9)
    conn = Connection(KafkaSettings(bootstrap_servers="k", broker_timeout_s=0.2))
    with pytest.raises(RuntimeFailure, match=r"did not answer within 0\.2s"):
        conn.reach(client, "x")


def test_a_silent_broker_is_named_in_words_not_as_a_kafka_error_repr() -> None:
    from confluent_kafka import KafkaError, KafkaException

    class _Refused(_SilentThenAnswering):
        def list_topics(self, timeout: float) -> None:
            self.asked += 1
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))

    conn = Connection(KafkaSettings(bootstrap_servers="k", broker_timeout_s=0.2))
    with pytest.raises(RuntimeFailure) as failed:
        conn.reach(_Refused(silent=0), "reading t")
    assert "(Failed to get metadata)" in str(failed.value)
    assert "KafkaError{" not in str(failed.value)


def test_a_long_wait_says_it_is_still_waiting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import worker.kafka.connection as connection

    monkeypatch.setattr(connection, "WAITING_NOTE_S", (0.0, 3600.0))
    conn = Connection(KafkaSettings(bootstrap_servers="k:9", broker_timeout_s=0))
    conn.reach(_SilentThenAnswering(silent=3), "reading t")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines  # one note, then none until the next interval
    assert lines[0].startswith("scoring-worker: warning: reading t: broker k:9 has not answered")
    assert lines[0].endswith("still waiting (--broker-timeout 0: for ever)")


# --- every command, as an operator meets it --------------------------------------------------


@pytest.mark.parametrize(
    ("given", "env"),
    [
        (["--kafka-property", "consumer.group.id=mine"], {}),
        ([], {"SCORING_WORKER_KAFKA_TRANSACTIONAL_ID": "mine"}),
    ],
)
def test_every_command_refuses_a_property_the_worker_sets_alike(
    penguins_bundle_dir: Path, tmp_path: Path, given: list[str], env: dict[str, str]
) -> None:
    lines = {}
    for name, args in _commands(penguins_bundle_dir, tmp_path, *given).items():
        code, err = _run(args, env)
        assert code == 2, (name, err)
        assert len(err.splitlines()) == 1, (name, err)
        lines[name] = err.strip()
    assert len(set(lines.values())) == 1, lines
    assert "is set by scoring-worker itself" in next(iter(lines.values()))


def test_every_command_says_the_same_of_broker_timeout(
    penguins_bundle_dir: Path, tmp_path: Path
) -> None:
    for name, args in _commands(penguins_bundle_dir, tmp_path).items():
        done = subprocess.run(
            [SCORING_WORKER, *args[: args.index("--bootstrap-servers")], "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        flat = " ".join(done.stdout.split())
        assert "unreachable SECONDS; 0: never" in flat, (name, flat)
        assert "SCORING_WORKER_BROKER_TIMEOUT" in flat, name
        code, err = _run([*args, "--broker-timeout", "-1"])
        assert code == 2 and "broker-timeout" in err, (name, err)


def test_zero_waits_for_the_broker_on_every_command(
    penguins_bundle_dir: Path, tmp_path: Path
) -> None:
    """``--broker-timeout 0`` is accepted by every command, and none gives up: each is
    still waiting for the absent broker well after a second's timeout would have ended."""
    started = {
        name: subprocess.Popen(
            [SCORING_WORKER, *args, "--broker-timeout", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in _commands(penguins_bundle_dir, tmp_path).items()
    }
    deadline = time.monotonic() + STILL_WAITING_S
    try:
        for name, process in started.items():
            with pytest.raises(subprocess.TimeoutExpired):  # still waiting: never gave up
                process.wait(timeout=max(deadline - time.monotonic(), 0.01))
                pytest.fail(f"{name} exited {process.returncode}: {process.stderr}")
    finally:
        for process in started.values():
            process.kill()
            process.wait()
