"""A ``--kafka-property`` librdkafka refuses (issue 28): one line naming it, exit 2, never
its value; the closest property name when one is close; what to use instead of JAAS.
The client refuses it at construction: no broker is needed."""

from __future__ import annotations

import pytest

from worker import logs
from worker.cli.main import run_cli
from worker.kafka.properties import property_problem

SECRET = "Hunter2SuperSecret"


@pytest.fixture(autouse=True)
def _no_secrets_kept_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets other tests kept (a word like ``key``) would mask parts of these lines."""
    monkeypatch.setattr(logs, "_secrets", set())


def _topics(*properties: str) -> list[str]:
    args = ["topics", "create", "--bootstrap-servers", "127.0.0.1:1", "--topic", "t"]
    return args + [a for p in properties for a in ("--kafka-property", p)]


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        (f"sasl.pasword={SECRET}", "sasl.pasword: no such librdkafka property (did you mean "
         "sasl.password?)"),
        (f"ssl.key.pasword={SECRET}", "did you mean ssl.key.password?"),
        (f"sasl.jaas.config=org.apache...ScramLoginModule password={SECRET}",
         "give sasl.mechanism, sasl.username and sasl.password instead"),
        (f"security.protocol={SECRET}", "security.protocol: librdkafka refuses its value"),
        ("no.such.thing.at.all=1", "see librdkafka's CONFIGURATION.md"),
    ],
)  # fmt: skip
def test_a_refused_property_is_one_line_of_bad_usage(
    prop: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(_topics(prop)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scoring-worker: error: kafka property ")
    assert expected in err and SECRET not in err and "KafkaException" not in err


def test_the_environment_form_is_checked_the_same_way(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCORING_WORKER_KAFKA_SASL_PASWORD", SECRET)
    assert run_cli(_topics()) == 2
    err = capsys.readouterr().err
    assert "did you mean sasl.password?" in err and SECRET not in err


def test_other_errors_are_not_property_problems() -> None:
    assert property_problem("_TRANSPORT: Failed to get metadata") is None


def test_the_property_variable_takes_one_property_per_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 28: SCORING_WORKER_KAFKA_PROPERTY was split on whitespace, so a password with
    a space became two "properties", silently."""
    import click
    from click.testing import CliRunner

    from worker.cli.kafka_options import KAFKA_PROPERTY

    @click.command()
    @KAFKA_PROPERTY
    def show(kafka_property: tuple[str, ...]) -> None:
        click.echo(repr(kafka_property))

    lines = f"sasl.password={SECRET} with space\n\nsasl.username=bob\n"
    out = CliRunner().invoke(show, [], env={"SCORING_WORKER_KAFKA_PROPERTY": lines}).output
    assert out.strip() == repr((f"sasl.password={SECRET} with space", "sasl.username=bob"))
