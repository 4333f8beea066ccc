"""Events without an id field or key: research `score` and live `run` give them one id.

The id derives from the event's bytes (SPEC "Events and records"), so `parity` pairs
the research file with a recording of the live output topic, identical events (equal
bytes, repeated) included: they pair up in order.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kafka_broker import TopicFactory, unique_topic

from examples.stream import generate_events
from model_bundles.build import build_from_config
from worker.cli.main import run_cli

REPO = Path(__file__).resolve().parents[2]
PENGUINS = REPO / "examples" / "penguins"
SCORING_WORKER = str(Path(sys.executable).parent / "scoring-worker")
EVENTS = 120


def cli(*args: object) -> int:
    return run_cli([str(a) for a in args])


@pytest.fixture
def idless_events(tmp_path: Path) -> Iterator[Path]:
    """Demo events without `event_id`, the first five repeated byte for byte at the end."""
    lines = []
    for line in generate_events(EVENTS - 5, seed=4):
        event = orjson.loads(line)
        event.pop("event_id", None)
        lines.append(orjson.dumps(event))
    lines += lines[:5]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    yield path


def test_score_and_run_pair_events_without_ids(
    idless_events: Path,
    bootstrap: str,
    topic_factory: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = tmp_path / "bundle"
    build_from_config(PENGUINS / "config.toml", PENGUINS / "penguins.csv", bundle)
    research = tmp_path / "research.jsonl"
    assert cli("score", "--bundle", bundle, "--input", idless_events, "--output", research) == 0
    source, output = topic_factory(partitions=2), topic_factory(partitions=2)
    connect = ("--bootstrap-servers", bootstrap)
    assert cli("publish", *connect, "--topic", source, "--input", idless_events) == 0
    args = [SCORING_WORKER, "run", "--bundle", str(bundle), *connect, "--input-topic", source]
    args += ["--output-topic", output, "--no-dlq", "--group-id", unique_topic("ids")]
    args += ["--max-events", str(EVENTS), "--idle-timeout", "60"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORING_WORKER_")}
    env["OMP_NUM_THREADS"] = "1"
    completed = subprocess.run(args, env=env, capture_output=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr.decode()[-2000:]
    live = tmp_path / "live.jsonl"
    assert cli("record", *connect, "--topic", output, "--output", live) == 0

    capsys.readouterr()
    code = cli("parity", "--expected", research, "--actual", live, "--json")
    report = orjson.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"], report
    assert report["matched"] == EVENTS and report["expected"]["duplicates"] == 5
    ids = {orjson.loads(line)["event_id"] for line in research.read_bytes().splitlines()}
    assert len(ids) == EVENTS - 5 and all(i.startswith("sha256:") for i in ids)
