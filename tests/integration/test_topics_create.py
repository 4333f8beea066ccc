"""`topics create` on a topic that exists (issue 28, item 13): configs asked for are never
ignored silently. The same configs: exit 0; others: exit 1 naming each, left as they are;
``--alter`` sets them (and says so); a config the broker refuses: exit 2."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient
from kafka_broker import TopicFactory

from worker.cli.main import run_cli
from worker.kafka.admin import topic_configs


def _create(bootstrap: str, topic: str, *extra: str) -> int:
    return run_cli(["topics", "create", "--bootstrap-servers", bootstrap, "--topic", topic, *extra])


def _max_message_bytes(bootstrap: str, topic: str) -> str:
    return topic_configs(AdminClient({"bootstrap.servers": bootstrap}), topic, 10)[
        "max.message.bytes"
    ]


def test_configs_of_an_existing_topic_are_checked_or_altered(
    bootstrap: str, topic_factory: TopicFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = topic_factory(1)
    before = _max_message_bytes(bootstrap, topic)
    asked = ("--config", "max.message.bytes=2097152")

    assert _create(bootstrap, topic, *asked) == 1
    err = capsys.readouterr().err
    assert f"max.message.bytes={before} (asked 2097152)" in err and "--alter" in err
    assert _max_message_bytes(bootstrap, topic) == before

    assert _create(bootstrap, topic, *asked, "--alter") == 0
    assert f"altered {topic}: max.message.bytes {before} -> 2097152" in capsys.readouterr().err
    assert _max_message_bytes(bootstrap, topic) == "2097152"

    assert _create(bootstrap, topic, *asked) == 0
    assert "as asked" in capsys.readouterr().err

    assert _create(bootstrap, topic, "--config", "no.such.config=1", "--alter") == 2
    assert "no.such.config" in capsys.readouterr().err


def test_an_unknown_config_is_bad_usage_and_its_secret_value_never_shows(
    bootstrap: str, topic_factory: TopicFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 28: ``--config ssl.key.password=...`` printed the password back (``asked
    Hunter2...``) and exit 1 suggesting ``--alter``; an unknown name is exit 2, one line."""
    topic = topic_factory(1)
    secret = "Hunter2SuperSecret"
    for extra in ((), ("--alter",)):
        assert _create(bootstrap, topic, "--config", f"ssl.key.password={secret}", *extra) == 2
        err = capsys.readouterr().err
        assert secret not in err and "ssl.key.password" in err and "--alter" not in err
        assert err.count("\n") == 1

    assert _create(bootstrap, topic, "--config", "max.mesage.bytes=2097152", "--alter") == 2
    assert "did you mean max.message.bytes?" in capsys.readouterr().err

    new = f"{topic}-new"  # not created: the broker refuses the name at creation
    assert _create(bootstrap, new, "--config", f"sasl.password={secret}") == 2
    err = capsys.readouterr().err
    assert secret not in err and "sasl.password" in err and "creating" not in err

    assert _create(bootstrap, topic, "--config", f"ssl.key.password {secret}") == 2
    assert secret not in capsys.readouterr().err


def test_a_refused_alter_says_altering(
    bootstrap: str, topic_factory: TopicFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = topic_factory(1)
    assert _create(bootstrap, topic, "--config", "max.message.bytes=abc", "--alter") == 2
    err = capsys.readouterr().err
    assert f"altering {topic}: INVALID_CONFIG" in err and "creating topics" not in err
