"""WorkerSettings: one frozen model, options over SCORING_WORKER_*, librdkafka passthrough."""

from __future__ import annotations

import click
import pytest
from pydantic import SecretStr, ValidationError

from worker.cli.live import build_settings
from worker.kafka.properties import is_secret, kafka_key_from_env, parse_kafka_property
from worker.live.settings import WorkerSettings

REQUIRED = {
    "bundle": "b",
    "bootstrap_servers": "k:9092",
    "input_topic": "in",
    "output_topic": "out",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SCORING_WORKER_"):
            monkeypatch.delenv(name)


def test_defaults_and_units_in_names() -> None:
    s = WorkerSettings(**REQUIRED)
    assert s.delivery == "exactly-once"
    assert s.max_batch_events == 5000 and s.max_batch_age_ms == 5
    assert s.idle_timeout_s is None and s.max_events is None
    assert all(field.description for field in WorkerSettings.model_fields.values())


def test_frozen() -> None:
    s = WorkerSettings(**REQUIRED)
    with pytest.raises(ValidationError):
        s.group_id = "other"  # type: ignore[misc]


def test_environment_fills_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_WORKER_GROUP_ID", "scorers")
    monkeypatch.setenv("SCORING_WORKER_MAX_BATCH_EVENTS", "7")
    s = WorkerSettings(**REQUIRED)
    assert s.group_id == "scorers" and s.max_batch_events == 7


def test_kafka_properties_from_environment_are_renamed_and_secrets_kept_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCORING_WORKER_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("SCORING_WORKER_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SCORING_WORKER_KAFKA_PROPERTY", "linger.ms=9")  # the option's env form
    s = WorkerSettings(**REQUIRED)
    assert isinstance(s.kafka["sasl.password"], SecretStr)
    assert s.kafka["security.protocol"] == "SASL_SSL"
    assert "property" not in s.kafka
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.masked())
    assert s.masked()["kafka"]["sasl.password"] == "**********"
    assert s.consumer_config()["sasl.password"] == "hunter2"
    assert s.producer_config()["sasl.password"] == "hunter2"


def test_options_override_environment_property_by_property(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCORING_WORKER_KAFKA_LINGER_MS", "50")
    monkeypatch.setenv("SCORING_WORKER_KAFKA_ACKS", "all")
    s = WorkerSettings(**REQUIRED, kafka={"linger.ms": "1"})
    assert s.kafka == {"linger.ms": "1", "acks": "all"}


def test_scoped_properties_reach_one_client() -> None:
    s = WorkerSettings(
        **REQUIRED,
        kafka={"consumer.session.timeout.ms": "6000", "producer.linger.ms": "2", "acks": "1"},
    )
    consumer, producer = s.consumer_config(), s.producer_config()
    assert consumer["session.timeout.ms"] == "6000" and "session.timeout.ms" not in producer
    assert producer["linger.ms"] == "2" and "linger.ms" not in consumer
    assert consumer["acks"] == producer["acks"] == "1"


def test_short_producer_retry_backoff_by_default_yet_overridable() -> None:
    # 10 ms, not librdkafka's 100: each transaction's first produce is retried after it
    # while the previous commit's markers are written (p99 latency, docs/benchmarks.md).
    default = WorkerSettings(**REQUIRED).producer_config()
    assert default["retry.backoff.ms"] == 10 and default["retry.backoff.max.ms"] == 50
    s = WorkerSettings(**REQUIRED, kafka={"producer.retry.backoff.ms": "250"})
    config = s.producer_config()
    assert config["retry.backoff.ms"] == "250" and config["retry.backoff.max.ms"] == 250
    s = WorkerSettings(**REQUIRED, kafka={"retry.backoff.max.ms": "2000"})
    assert s.producer_config()["retry.backoff.max.ms"] == "2000"


@pytest.mark.parametrize(
    "key",
    ["enable.auto.commit", "transactional.id", "consumer.isolation.level", "group.id", "Bad Key"],
)
def test_properties_the_worker_owns_or_malformed_are_refused(key: str) -> None:
    with pytest.raises(ValidationError):
        WorkerSettings(**REQUIRED, kafka={key: "x"})


def test_delivery_modes_render_the_right_clients() -> None:
    eos = WorkerSettings(**REQUIRED, group_id="g", instance_id="host-0")
    assert eos.producer_config()["transactional.id"] == "g-host-0"
    assert eos.producer_config()["enable.idempotence"] is True
    consumer = eos.consumer_config()
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["isolation.level"] == "read_committed"
    alo = WorkerSettings(**REQUIRED, delivery="at-least-once")
    assert "transactional.id" not in alo.producer_config()
    assert alo.producer_config()["enable.idempotence"] is True


def test_helpers() -> None:
    assert kafka_key_from_env("SCORING_WORKER_KAFKA_SSL_KEY_PASSWORD") == "ssl.key.password"
    assert is_secret("ssl.key.password") and is_secret("sasl.oauthbearer.client.secret")
    assert not is_secret("linger.ms")
    assert parse_kafka_property("a.b=c=d") == ("a.b", "c=d")
    with pytest.raises(ValueError):
        parse_kafka_property("novalue")


def test_cli_options_become_settings_and_bad_values_are_usage_errors() -> None:
    options = {
        **REQUIRED,
        "group_id": None,
        "idle_timeout_s": 2.5,
        "kafka_property": ("linger.ms=3",),
    }
    s = build_settings(options)
    assert s.group_id == "scoring-worker" and s.idle_timeout_s == 2.5
    assert s.kafka == {"linger.ms": "3"}
    with pytest.raises(click.UsageError, match="max_batch_events"):
        build_settings({**REQUIRED, "max_batch_events": 0})
