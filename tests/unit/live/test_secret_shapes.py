"""A secret given in a malformed shape never appears in any message (issue 28, item 6).

The password reaches the command line as users mistype it: a space for the ``=``, the
value split off by the shell, a colon, upper case, quotes, the environment. Every command
that takes ``--kafka-property`` must fail (or run) without printing it, in its error line
and in its log lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.cli.main import run_cli
from worker.kafka.properties import ENV_PREFIX

SECRET = "Hunter2SuperSecret"
NOWHERE = ["--bootstrap-servers", "127.0.0.1:1", "--broker-timeout", "1"]
SCORING_WORKER = str(Path(sys.executable).parent / "scoring-worker")

SHAPES: list[list[str]] = [
    ["--kafka-property", f"sasl.password {SECRET}"],
    ["--kafka-property", f"consumer.sasl.password {SECRET}"],
    ["--kafka-property", SECRET],
    ["--kafka-property", f"sasl.password:{SECRET}"],
    ["--kafka-property", f"sasl.password:{SECRET}=x"],
    ["--kafka-property", f"SASL PASSWORD={SECRET}"],
    ["--kafka-property", f"sasl.password= {SECRET}"],
    ["--kafka-property", "sasl.password=", SECRET],
    [f"--kafka-property=sasl.password {SECRET}"],
    ["--kafka-property", f'sasl.password="{SECRET}"x'],
    ["--kafka-property", f"sasl.password={SECRET}", "--kafka-property", "group.id=x"],
    ["--kafka-property", f"sasl.password={SECRET}", "--kafka-property", "bad key=1"],
    ["--kafka-property", f"sasl.password={SECRET}", "--kafka-property", "no.such.property=1"],
]


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    events = tmp_path / "events.jsonl"
    events.write_text('{"a": 1}\n')
    return {
        "publish": ["publish", *NOWHERE, "--topic", "t", "--input", str(events)],
        "record": ["record", *NOWHERE, "--topic", "t", "--output", str(tmp_path / "r.jsonl")],
        "topics create": ["topics", "create", *NOWHERE, "--topic", "t"],
    }


@pytest.fixture(autouse=True)
def _no_worker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("command", ["publish", "record", "topics create"])
@pytest.mark.parametrize("shape", SHAPES, ids=[" ".join(s) for s in SHAPES])
def test_no_shape_of_kafka_property_prints_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, shape: list[str]
) -> None:
    code = run_cli([*_commands(tmp_path)[command], *shape])
    out, err = capsys.readouterr()
    assert code != 0
    assert err.strip(), "a failure says something"
    assert SECRET.lower() not in (out + err).lower(), err


@pytest.mark.parametrize(
    "variable",
    [f"sasl.password {SECRET}", f"sasl.password= {SECRET}", f"x=1 {SECRET}"],
)
def test_the_option_s_environment_form_never_prints_the_secret(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "KAFKA_PROPERTY", variable)
    code = run_cli(_commands(tmp_path)["publish"])
    out, err = capsys.readouterr()
    assert code != 0 and err.strip()
    assert SECRET.lower() not in (out + err).lower(), err


RUN_SHAPES = [SHAPES[0], SHAPES[4], SHAPES[7], SHAPES[12]]


@pytest.mark.parametrize("shape", RUN_SHAPES, ids=[" ".join(s) for s in RUN_SHAPES])
def test_run_never_prints_the_secret_in_its_error_or_log_lines(
    penguins_bundle_dir: Path, shape: list[str]
) -> None:
    topics = ["--input-topic", "in", "--output-topic", "out", "--no-dlq"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    done = subprocess.run(
        [SCORING_WORKER, "run", "--bundle", str(penguins_bundle_dir), *NOWHERE, *topics, *shape],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode != 0
    assert done.stderr.strip()
    assert SECRET.lower() not in (done.stdout + done.stderr).lower(), done.stderr[-2000:]
