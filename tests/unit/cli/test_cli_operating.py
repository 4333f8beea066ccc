"""The CLI as an operator meets it: one line and exit 3 for a broker that is not there,
SIGTERM during start-up, `--debug` anywhere, `--no-dlq`, complete and fast help."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker.kafka.properties import ENV_PREFIX
from worker.live.settings import WorkerSettings

SCORING_WORKER = str(Path(sys.executable).parent / "scoring-worker")
NOWHERE = "127.0.0.1:1"  # nothing listens: connection refused at once
TIMEOUT_S = 3
STARTUP_ALLOWANCE_S = 60
"""Interpreter, imports and bundle self-check on a busy 2-core machine."""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


def _run(args: list[str], timeout_s: float = 180) -> tuple[int, list[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [SCORING_WORKER, *args], capture_output=True, text=True, timeout=timeout_s, env=_env()
    )
    return done.returncode, done.stderr.splitlines(), time.monotonic() - started


def _commands(bundle: Path, tmp_path: Path) -> dict[str, list[str]]:
    events = tmp_path / "events.jsonl"
    events.write_text('{"a": 1}\n')
    kafka = ["--bootstrap-servers", NOWHERE, "--broker-timeout", str(TIMEOUT_S)]
    topics = ["--input-topic", "in", "--output-topic", "out", "--dlq-topic", "dlq"]
    return {
        "run": ["run", "--bundle", str(bundle), *kafka, *topics],
        "publish": ["publish", *kafka, "--topic", "t", "--input", str(events)],
        "record": ["record", *kafka, "--topic", "t", "--output", str(tmp_path / "r.jsonl")],
        "replay": [
            "replay",
            "--bundle",
            str(bundle),
            *kafka,
            "--topic",
            "t",
            "--output",
            str(tmp_path / "p.jsonl"),
        ],
        "topics create": ["topics", "create", *kafka, "--topic", "t"],
    }


@pytest.mark.parametrize("command", ["run", "publish", "record", "replay", "topics create"])
def test_an_unreachable_broker_is_one_line_and_exit_3_within_the_timeout(
    penguins_bundle_dir: Path, tmp_path: Path, command: str
) -> None:
    code, lines, elapsed_s = _run(_commands(penguins_bundle_dir, tmp_path)[command])
    assert code == 3, lines
    if command == "run":  # its JSON log lines, then the one error line
        assert all(line.startswith("{") for line in lines[:-1]), lines[:5]
        lines = lines[-1:]
    assert len(lines) == 1, lines[:5]  # librdkafka's own lines never reach stderr
    assert lines[0].startswith("scoring-worker: error: ") and NOWHERE in lines[0]
    assert elapsed_s < 2 * TIMEOUT_S + STARTUP_ALLOWANCE_S  # run: limits, then the worker


def test_sigterm_during_start_up_exits_0_at_once(penguins_bundle_dir: Path, tmp_path: Path) -> None:
    args = _commands(penguins_bundle_dir, tmp_path)["run"]
    args[args.index("--broker-timeout") + 1] = "120"
    proc = subprocess.Popen([SCORING_WORKER, *args], stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + STARTUP_ALLOWANCE_S
    while not _blocks_sigterm(proc.pid):  # the signal thread is in place
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert proc.wait(30) == 0
    assert time.monotonic() - started < 5
    assert proc.stderr is not None
    lines = proc.stderr.read().splitlines()  # the stop line, and nothing else
    assert len(lines) == 1, lines
    stop = json.loads(lines[0])
    assert (stop["event"], stop["reason"], stop["during"]) == ("stop", "SIGTERM", "start-up")


def _blocks_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    blocked = next(line for line in status.splitlines() if line.startswith("SigBlk:"))
    return bool(int(blocked.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def test_run_refuses_to_start_without_a_dlq_unless_told(tmp_path: Path) -> None:
    base = ["run", "--bundle", str(tmp_path), "--bootstrap-servers", NOWHERE]
    base += ["--input-topic", "in", "--output-topic", "out"]
    code, lines, _ = _run(base)
    assert code == 2
    assert lines == [
        "scoring-worker: error: give --dlq-topic TOPIC for rejected events, "
        "or --no-dlq to only count them"
    ]
    code, lines, _ = _run([*base, "--no-dlq"])  # past the check: the bundle is not there
    assert code != 2 or "dlq" not in lines[0]


def test_debug_is_accepted_after_the_command(tmp_path: Path) -> None:
    code, lines, _ = _run(["parity", "--expected", "nope", "--actual", "nope", "--debug"])
    assert code == 2 and "No such option" not in "\n".join(lines)


def test_help_lists_every_setting_with_its_default_and_environment_name() -> None:
    code, _, _ = _run(["run", "--help"])
    assert code == 0
    text = subprocess.run(
        [SCORING_WORKER, "run", "--help"], capture_output=True, text=True, env=_env()
    ).stdout
    flat = " ".join(text.split())
    renamed = {"broker_timeout_s": "BROKER_TIMEOUT", "idle_timeout_s": "IDLE_TIMEOUT"}
    renamed["model_timeout_s"] = "MODEL_TIMEOUT"
    for name in set(WorkerSettings.model_fields) - {"kafka", "dlq_max_message_bytes"}:
        assert ENV_PREFIX + renamed.get(name, name.upper()) in flat, name
    assert "SCORING_WORKER_KAFKA_<PROPERTY>" in flat
    assert "[default: exactly-once]" in flat and "[default: 1048576]" in flat
    assert "SCORING_WORKER_BROKER_TIMEOUT_S" not in flat  # one name per setting


def test_top_level_help_imports_no_heavy_module() -> None:
    probe = (
        "import sys\n"
        "from worker.cli.main import run_cli\n"
        "assert run_cli(['--help']) == 0\n"
        "heavy = {'pandas', 'sklearn', 'numpy', 'confluent_kafka', 'pydantic'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "topics" in done.stdout and "run" in done.stdout


@pytest.mark.parametrize("command", ["record", "publish", "parity", "topics"])
def test_the_commands_that_score_nothing_import_no_scoring_stack(command: str) -> None:
    """`record`, `publish`, `parity` and `topics` move bytes: they start without pandas,
    scikit-learn or skops (2-3 s of CPU a start; the test suite starts them dozens of
    times, operators in scripts)."""
    probe = (
        "import sys\n"
        "from worker.cli.main import run_cli\n"
        f"assert run_cli([{command!r}, '--help']) == 0\n"
        "heavy = {'pandas', 'sklearn', 'skops', 'scipy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_version_prints_the_version_and_every_library_a_bundle_is_checked_against() -> None:
    from importlib.metadata import version

    from model_bundles.versions import PACKAGES, runtime_versions

    done = subprocess.run([SCORING_WORKER, "--version"], capture_output=True, text=True, env=_env())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"scoring-worker {version('scoring-worker')}"
    runtime = runtime_versions()
    for name in ("python", *PACKAGES[:-1]):
        assert f"  {name} {runtime[name]}" in lines, (name, lines)
    assert f"  confluent-kafka {version('confluent-kafka')}" in lines
    assert any(line.startswith("  librdkafka ") for line in lines)


def test_every_option_of_every_command_says_what_it_does() -> None:
    """Issue 28: `topics create --partitions` (and `--batch-size`) had no help text."""
    import click

    from worker.cli.main import cli

    ctx = click.Context(cli)
    missing = []
    groups: list[tuple[str, click.Command]] = [("", cli)]
    while groups:
        name, command = groups.pop()
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                found = command.get_command(ctx, sub)
                assert found is not None
                groups.append((f"{name} {sub}".strip(), found))
            continue
        missing += [
            f"{name} {p.opts[0]}"
            for p in command.params
            if isinstance(p, click.Option) and not p.hidden and not p.help
        ]
    assert not missing, missing
