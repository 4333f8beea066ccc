"""record, publish, replay and parity on a real broker.

The chain the issue asks for, per estimator family: research `score` on a file, `publish`
of that file, live `run` over it at several batch sizes, `record` of each output topic and
`replay` of the input topic all give the same outputs for every event (`parity` exit 0),
and the live records are byte for byte the replayed ones. Then: replays are byte-identical,
a time range selects exactly the events in it, and a recording with non-UTF-8 bytes and
headers survives record -> publish -> record. Every wait polls against a deadline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka_broker import TopicFactory, create_topic, delete_topics, settled, unique_topic
from prometheus_client import CollectorRegistry

from examples.stream import generate_events
from model_bundles.build import build_from_config
from model_bundles.bundle import load_bundle
from worker.cli.main import run_cli
from worker.core.ranges import Bounds
from worker.core.recording import RecordedMessage, encode_message, read_recording
from worker.core.scoring import BatchScorer
from worker.kafka.connection import Connection
from worker.kafka.offsets_admin import OffsetsAdmin
from worker.kafka.ranges import RangeReader
from worker.monitoring.metrics import WorkerMetrics
from worker.replay.parity import ParityChecker
from worker.replay.replay import FileSink, replay

REPO = Path(__file__).resolve().parents[2]
PENGUINS = REPO / "examples" / "penguins"
SCORING_WORKER = str(Path(sys.executable).parent / "scoring-worker")
FAMILIES = {
    "logistic_regression": "config.toml",
    "random_forest": "config-rf.toml",
    "hist_gradient_boosting": "config-hgb.toml",
    "ridge_regression": "config-mass.toml",
}
EVENTS = 400
BATCH_SIZES = (1, 7, 1000)
START = datetime(2025, 1, 1, tzinfo=UTC)  # examples.stream: ts = START + 10 ms * line


def cli(*args: object) -> int:
    return run_cli([str(a) for a in args])


def ok(*args: object) -> None:
    """Run a command that must succeed."""
    assert cli(*args) == 0, args


def record_topic(bootstrap: str, topic: str, path: Path, *extra: object) -> list[RecordedMessage]:
    """`record` of ``topic`` once its last transaction is readable (a worker that just
    exited after its last commit left its markers to the coordinator)."""
    settled(bootstrap, topic)
    ok("record", "--bootstrap-servers", bootstrap, "--topic", topic, "--output", path, *extra)
    return list(read_recording(path.open("rb"), path.name))


def parity_report(expected: Path, actual: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    capsys.readouterr()
    code = cli("parity", "--expected", expected, "--actual", actual, "--json")
    report = orjson.loads(capsys.readouterr().out)
    assert (code == 0) == report["ok"], report
    return report


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- shared fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """family -> bundle directory, each built once per session when first asked for."""
    built: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("replay-bundles")

    def get(family: str) -> Path:
        if family not in built:
            out = root / family
            build_from_config(PENGUINS / FAMILIES[family], PENGUINS / "penguins.csv", out)
            built[family] = out
        return built[family]

    return get


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo events with poison (rejected everywhere alike) and a species field (ridge)."""
    path = tmp_path_factory.mktemp("replay-stream") / "events.jsonl"
    lines = generate_events(EVENTS, seed=11, poison_rate=0.05, with_species=True)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def research(
    bundles: Callable[[str], Path], stream: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """family -> the research path's predictions for the stream (`score`), made once."""
    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            out = tmp_path_factory.mktemp("research") / f"{family}.jsonl"
            ok("score", "--bundle", bundles(family), "--input", stream, "--output", out)
            made[family] = out
        return made[family]

    return get


@pytest.fixture(scope="module")
def created(bootstrap: str) -> Iterator[list[str]]:
    """Topics the tests make `publish` create; deleted at the end of the module."""
    names: list[str] = []
    yield names
    if names and os.environ.get("KAFKA_KEEP_TOPICS") != "1":
        delete_topics(bootstrap, names)


@pytest.fixture(scope="module")
def input_topic(bootstrap: str, stream: Path, created: list[str]) -> str:
    """The stream published by `publish` into 3 new partitions, keyed and timestamped."""
    topic = unique_topic("replay-input")
    created.append(topic)
    code = cli(
        "publish",
        "--bootstrap-servers",
        bootstrap,
        "--topic",
        topic,
        "--input",
        stream,
        "--partitions",
        3,
        "--key-field",
        "event_id",
        "--timestamp-field",
        "ts",
    )
    assert code == 0
    return topic


@dataclass
class LiveRun:
    """One `scoring-worker run` process: a family's bundle at one batch size."""

    size: int
    output: str
    log: Path
    process: subprocess.Popen[bytes]

    def wait(self, timeout_s: float) -> None:
        code = self.process.wait(timeout_s)
        assert code == 0, f"batch size {self.size}: exit {code}: {self.log.read_text()[-2000:]}"


def start_worker(
    bundle: Path, bootstrap: str, source: str, output: str, size: int, log: Path
) -> LiveRun:
    """`scoring-worker run` as a real process; it stops by itself after the stream."""
    args = [SCORING_WORKER, "run", "--bundle", str(bundle), "--bootstrap-servers", bootstrap]
    args += ["--input-topic", source, "--output-topic", output, "--no-dlq"]
    args += ["--group-id", unique_topic("rg")]
    args += ["--instance-id", f"replay-{size}", "--max-batch-events", str(size)]
    args += ["--max-events", str(EVENTS), "--idle-timeout", "60"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORING_WORKER_")}
    # A dozen workers share the CPUs here; OpenMP's spinning threads (hist gradient
    # boosting) then make a batch ~25x slower. model_bundles.predict limits BLAS only,
    # so limit OpenMP for the test (outputs do not depend on it: rows are independent).
    env["OMP_NUM_THREADS"] = "1"
    with log.open("wb") as err:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env)
    return LiveRun(size, output, log, process)


@pytest.fixture(scope="module")
def live_runs(
    bundles: Callable[[str], Path],
    input_topic: str,
    bootstrap: str,
    created: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, list[LiveRun]]]:
    """Every family at every batch size, all started at once (their start-up overlaps)."""
    logs = tmp_path_factory.mktemp("live-runs")
    runs: dict[str, list[LiveRun]] = {family: [] for family in FAMILIES}
    try:
        for family in FAMILIES:
            for size in BATCH_SIZES:
                output = unique_topic(f"replay-live-{family}-{size}")
                created.append(output)
                create_topic(bootstrap, output, 2)
                log = logs / f"{family}-{size}.log"
                runs[family].append(
                    start_worker(bundles(family), bootstrap, input_topic, output, size, log)
                )
        yield runs
    finally:
        for run in (r for family_runs in runs.values() for r in family_runs):
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait(30)


# --- research == live == record == replay, per family and batch size ----------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_research_live_record_and_replay_give_identical_outputs(
    family: str,
    bundles: Callable[[str], Path],
    live_runs: dict[str, list[LiveRun]],
    research: Callable[[str], Path],
    input_topic: str,
    bootstrap: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected = research(family)
    replayed = tmp_path / "replay.jsonl"
    args = ["--bundle", bundles(family), "--bootstrap-servers", bootstrap, "--topic", input_topic]
    ok("replay", *args, "--output", replayed, "--expected", expected)
    for run in live_runs[family]:
        run.wait(240)

    research_count = len(expected.read_bytes().splitlines())
    assert parity_report(expected, replayed, capsys)["matched"] == research_count
    replay_lines = sorted(replayed.read_bytes().splitlines())
    for run in live_runs[family]:
        size, recording = run.size, tmp_path / f"live-{run.size}.jsonl"
        live = sorted(m.value or b"" for m in record_topic(bootstrap, run.output, recording))
        report = parity_report(expected, recording, capsys)
        assert report["ok"] and report["matched"] == research_count, (
            f"batch size {size}: {report['mismatched']} mismatched, "
            f"{report['missing_in_actual']} missing, first: {report['first_mismatches'][:2]}"
        )
        assert report["actual"]["duplicates"] == 0  # exactly once
        assert parity_report(replayed, recording, capsys)["ok"]
        assert live == replay_lines  # the same records, byte for byte, source included


# --- replay determinism, output topic, time and offset ranges ------------------------------


def test_two_replays_of_the_same_range_are_byte_identical(
    bundles: Callable[[str], Path],
    input_topic: str,
    bootstrap: str,
    topic_factory: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--bundle", bundles("random_forest"), "--bootstrap-servers", bootstrap]
    args += ["--topic", input_topic]
    first, second, via_topic = tmp_path / "1.jsonl", tmp_path / "2.jsonl", tmp_path / "t.jsonl"
    ok("replay", *args, "--output", first)
    ok("replay", *args, "--output", second, "--batch-size", 13)
    assert first.read_bytes() == second.read_bytes()
    sources = [orjson.loads(line)["source"] for line in first.read_bytes().splitlines()]
    positions = [(s["partition"], s["offset"]) for s in sources]
    assert positions == sorted(positions)  # by partition, then offset

    output = topic_factory(2)
    ok("replay", *args, "--output-topic", output)
    recorded = record_topic(bootstrap, output, via_topic)
    assert parity_report(first, via_topic, capsys)["ok"]
    by_value = {orjson.loads(m.value or b"")["event_id"]: m for m in recorded}
    for source, line in zip(sources, first.read_bytes().splitlines(), strict=True):
        message = by_value[orjson.loads(line)["event_id"]]
        assert message.timestamp_ms == source["timestamp"]  # the input event's time kept


def published_times(stream: Path) -> dict[str, int]:
    """event id -> the timestamp `publish --timestamp-field ts` gave its message."""
    stamps: dict[str, int] = {}
    for line in stream.read_bytes().splitlines():
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # published without a timestamp of its own: publish time, out of range
        if isinstance(event, dict) and isinstance(event.get("ts"), int):
            stamps[str(event["event_id"])] = event["ts"]
    return stamps


def test_a_time_range_selects_exactly_the_events_in_it(
    bundles: Callable[[str], Path],
    research: Callable[[str], Path],
    stream: Path,
    input_topic: str,
    bootstrap: str,
    tmp_path: Path,
) -> None:
    low, high = START + timedelta(seconds=1.5), START + timedelta(seconds=3)
    low_ms, high_ms = (int(t.timestamp() * 1000) for t in (low, high))
    in_range = {e for e, ts in published_times(stream).items() if low_ms <= ts < high_ms}
    assert 100 < len(in_range) < EVENTS // 2

    window = ["--from-time", iso(low), "--to-time", iso(high)]
    recorded = record_topic(bootstrap, input_topic, tmp_path / "range.jsonl", *window)
    assert {(m.key or b"").decode() for m in recorded} == in_range

    replayed, from_offset = tmp_path / "replay.jsonl", tmp_path / "offset.jsonl"
    args = ["--bundle", bundles("logistic_regression"), "--bootstrap-servers", bootstrap]
    args += ["--topic", input_topic]
    ok("replay", *args, "--output", replayed, *window)
    records = [orjson.loads(line) for line in replayed.read_bytes().splitlines()]
    scored = [
        orjson.loads(line) for line in research("logistic_regression").read_bytes().splitlines()
    ]
    assert {r["event_id"] for r in records} == in_range & {r["event_id"] for r in scored}
    assert all(low_ms <= r["source"]["timestamp"] < high_ms for r in records)

    ok("replay", *args, "--output", from_offset, "--from-offset", 100)
    offsets = [
        orjson.loads(line)["source"]["offset"] for line in from_offset.read_bytes().splitlines()
    ]
    assert offsets and min(offsets) >= 100


def test_replay_counts_parity_into_the_worker_metrics(
    bundles: Callable[[str], Path],
    research: Callable[[str], Path],
    input_topic: str,
    bootstrap: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle_dir = bundles("logistic_regression")
    lines = research("logistic_regression").read_bytes().splitlines()
    tampered = orjson.loads(lines[0])
    tampered["scores"] = {k: v + 1e-12 for k, v in tampered["scores"].items()}
    expected = tmp_path / "expected.jsonl"
    expected.write_bytes(b"\n".join([orjson.dumps(tampered), *lines[1:]]) + b"\n")

    bundle = load_bundle(bundle_dir)
    registry = CollectorRegistry()
    checker = ParityChecker(str(expected), "replay")
    checker.add_expected(expected.open("rb"))
    sink = FileSink(tmp_path / "replay.jsonl")
    with RangeReader(Connection.plain(bootstrap), input_topic) as reader:
        ranges = reader.resolve(Bounds())
        batches = reader.read(ranges, 50)
        replay(
            batches,
            BatchScorer(bundle),
            sink,
            observer=WorkerMetrics(registry, bundle),
            checker=checker,
        )
    sink.commit()
    assert registry.get_sample_value("scoring_parity_checked_total") == len(lines)
    assert registry.get_sample_value("scoring_parity_mismatch_total") == 1
    assert checker.finish().mismatched == 1

    args = ["--bundle", bundle_dir, "--bootstrap-servers", bootstrap, "--topic", input_topic]
    out = tmp_path / "cli.jsonl"
    code = cli("replay", *args, "--output", out, "--expected", expected, "--metrics-port", 0)
    assert code == 1  # the mismatch fails the replay, and the report says which event
    assert f"mismatch {tampered['event_id']}" in capsys.readouterr().out


# --- lossless record -> publish -> record --------------------------------------------------


def test_non_utf8_values_and_headers_survive_record_publish_record(
    bootstrap: str, created: list[str], tmp_path: Path
) -> None:
    base = int(START.timestamp() * 1000)
    odd = [
        (b"\xff\xfe\x00binary", b"k\x80", (("trace", b"\xc3\x28"), ("trace", b"t2"))),
        (None, None, (("empty", b""), ("none", None))),  # a tombstone without a key
        ('{"island": "Biscoe", "note": "caf\u00e9"}'.encode(), b"ev-1", ()),
        (b"", b"ev-2", (("x", b"1"), ("y", b"2"), ("x", b"3"))),
    ]
    original = [
        RecordedMessage("src", i % 2, i // 2, base + i, "create_time", key, value, headers)
        for i, (value, key, headers) in enumerate(odd * 3)
    ]
    first = tmp_path / "original.jsonl"
    first.write_bytes(b"".join(encode_message(m) + b"\n" for m in original))

    files = [first]
    for hop in range(2):
        topic = unique_topic(f"replay-lossless-{hop}")
        created.append(topic)
        publish = ["publish", "--bootstrap-servers", bootstrap, "--topic", topic]
        ok(*publish, "--input", files[-1], "--partitions", 2, "--keep-partitions")
        # readable as soon as publish returns: its commit markers are in (asked once)
        marks = OffsetsAdmin({"bootstrap.servers": bootstrap}).stable_and_end(
            [(topic, 0), (topic, 1)], 10
        )
        assert all(stable == end > 1 for stable, end in marks.values()), marks
        files.append(tmp_path / f"recorded-{hop}.jsonl")
        record_topic(bootstrap, topic, files[-1])

    def without_topic(path: Path) -> list[RecordedMessage]:
        messages = read_recording(path.open("rb"), path.name)
        return [RecordedMessage("", *_fields(m)) for m in messages]

    expected = sorted(without_topic(first), key=lambda m: (m.partition, m.offset))
    assert without_topic(files[1]) == expected
    assert without_topic(files[2]) == expected


def _fields(m: RecordedMessage) -> tuple[Any, ...]:
    return (m.partition, m.offset, m.timestamp_ms, m.timestamp_type, m.key, m.value, m.headers)


# --- one clear line and the right exit code -------------------------------------------------


def test_usage_and_broker_errors_exit_2_or_3_with_one_line(
    input_topic: str, bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"value": "{}", "partition": 5}\n')  # a recording for partition 5
    record = ["record", "--bootstrap-servers", bootstrap, "--output", out, "--topic"]
    publish = ["publish", "--bootstrap-servers", bootstrap, "--input", out, "--topic"]
    nowhere = ["record", "--bootstrap-servers", "127.0.0.1:1", "--broker-timeout", 2]
    cases: list[tuple[list[object], int, str]] = [
        ([*record, "no-such-topic-here"], 2, "topic no-such-topic-here does not exist"),
        ([*record, input_topic, "--from-time", "yesterday"], 2, "not an ISO 8601 time"),
        ([*record, input_topic, "--from-offset", 1, "--from-time", "2025-01-01"], 2, "not both"),
        ([*record, input_topic, "--from-time", "2025-01-02", "--to-time", "2025-01-01"], 2,
         "--to-time must be later"),
        ([*publish, unique_topic("absent")], 2, "does not exist, or this principal may not see it"),
        ([*publish, input_topic, "--keep-partitions"], 2, "has messages for partition 5"),
        ([*nowhere, "--topic", input_topic, "--output", out], 3, "did not answer within 2s"),
    ]  # fmt: skip
    for args, code, message in cases:
        capsys.readouterr()
        assert cli(*args) == code, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (args, err)
        assert out.read_bytes().startswith(b'{"value"')  # a failed record writes nothing
