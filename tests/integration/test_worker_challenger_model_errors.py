"""A broken challenger never stops the champion (issue 26 with ``--challenger``), on the
real broker.

Champion and challenger are the bundles of ``tests/support/model_error_fixtures.py``: the
champion's trusted ``Hooks`` raise at ``a >= 1000``, the challenger's at ``a >= 5``. The
first events alternate between both scoring and only the champion scoring; from then on
the challenger raises on every event, so its circuit opens. The worker disables it, keeps
scoring the champion (records equal to ``score``'s, its one dead letter) and exits 0.
A challenger that blocks (``b >= 100``) is a hang of the worker: not ready, exit 3.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
from kafka_broker import TopicFactory, poll_until
from prometheus_client.parser import text_string_to_metric_families
from worker_harness import SCORING_WORKER, Stream, Topics, WorkerProcess, produce_stream, stop_all
from worker_verify import read_predictions, read_with_headers

from harness.http import http_get
from harness.ports import free_port
from tests.support.model_error_fixtures import RAISE_AT, build_model_error_bundle, event

EVENTS = 300
MIXED = 50
"""Events 0..MIXED-1: the even ones score in the challenger too, the odd ones raise."""
BROKEN_AT = 5.0
CHAMPION_ERROR = 100
CHALLENGER = "model-errors@2"


def _stream(directory: Path) -> Stream:
    lines = []
    for i in range(EVENTS):
        a = 0.5 if i < MIXED and i % 2 == 0 else BROKEN_AT + 1 + i / 1000
        if i == CHAMPION_ERROR:
            a = RAISE_AT + 1
        lines.append(orjson.dumps({"event_id": f"ev-{i}", **event(a=a)}))
    path = directory / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return Stream(lines, [None] * len(lines), path)


def _challenger_metrics(port: int) -> dict[str, float]:
    status, text = http_get(f"http://127.0.0.1:{port}/metrics", timeout_s=2)
    found: dict[str, float] = {}
    if status != 200:
        return found
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("challenger") != CHALLENGER:
                continue
            if s.name == "scoring_challenger_disabled":
                found["disabled"] = s.value
            elif s.name == "scoring_challenger_rejected_total":
                found[f"rejected:{s.labels['reason']}"] = s.value
            elif s.name == "scoring_challenger_predictions_produced_total":
                found["produced"] = s.value
    return found


def test_a_challenger_raising_on_every_event_is_disabled_and_the_champion_scores_on(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    champion, champion_code = build_model_error_bundle(tmp_path / "champion")
    challenger, challenger_code = build_model_error_bundle(
        tmp_path / "challenger", raise_at=BROKEN_AT, version="2"
    )
    trust = ("--trust-code", champion_code, "--trust-code", challenger_code)
    stream = _stream(tmp_path)
    topics = Topics(input=topic_factory(1), output=topic_factory(1), dlq=topic_factory(1))
    challenger_topic = topic_factory(1)
    produce_stream(bootstrap, topics.input, stream)
    port = free_port()
    worker = WorkerProcess(
        bootstrap, topics, tmp_path, "broken-challenger", *trust,
        "--challenger", str(challenger), "--challenger-topic", challenger_topic,
        "--max-batch-events", "32", "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
        bundle=champion,
    )  # fmt: skip
    try:
        worker.wait_event("challenger_disabled", 120)  # raises if the worker exits instead
        records = read_predictions(bootstrap, topics.output, EVENTS - 1, deadline_s=180)
        metrics = poll_until(
            "the challenger to show disabled",
            60,
            lambda: ((m := _challenger_metrics(port)).get("disabled") == 1 and m) or None,
        )
        assert worker.proc.poll() is None, worker.story()  # still scoring the champion
        code, _ = worker.stop()
    finally:
        stop_all([worker])
    assert code == 0, worker.story()

    # the champion: every event once, in order, as `score` writes it; its one dead letter
    bodies = [orjson.loads(r.value or b"") for r in records]
    expected = [f"ev-{i}" for i in range(EVENTS) if i != CHAMPION_ERROR]
    assert [b["event_id"] for b in bodies] == expected
    out, rejects = tmp_path / "research.jsonl", tmp_path / "rejects.jsonl"
    score = [SCORING_WORKER, "score", "--bundle", str(champion), "--trust-code", champion_code]
    score += ["--input", str(stream.path), "--output", str(out), "--rejects", str(rejects)]
    done = subprocess.run(score, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    research = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [{**b, "source": None} for b in bodies] == research
    (letter,) = read_with_headers(bootstrap, topics.dlq, 1)
    assert letter.value == stream.lines[CHAMPION_ERROR]
    assert letter.headers["scoring.reason"] == b"model_error"

    # the challenger: the events it scored before its circuit opened, then nothing
    scored = read_predictions(bootstrap, challenger_topic, MIXED // 2)
    ids = [orjson.loads(r.value or b"")["event_id"] for r in scored]
    assert ids == [f"ev-{i}" for i in range(0, MIXED, 2)]
    (line,) = worker.events("challenger_disabled")
    digests = {orjson.loads(r.value or b"")["model"]["digest"] for r in scored}
    assert line["challenger"] == CHALLENGER and {line["digest"]} == digests
    assert "ValueError" in line["error"] and f"beyond {BROKEN_AT}" in line["error"]
    (summary,) = worker.events("challengers")
    mine = summary["challengers"][CHALLENGER]
    assert mine["produced"] == MIXED // 2 and "ValueError" in mine["disabled"]
    assert mine["rejected"]["model_error"] >= MIXED // 2 and set(mine["rejected"]) == {
        "model_error"
    }
    assert metrics["produced"] == MIXED // 2
    assert metrics["rejected:model_error"] == mine["rejected"]["model_error"]
    print(
        f"\nFIGURE broken challenger: {len(records)} champion records, 1 dead letter, "
        f"{len(scored)} challenger records, {mine['rejected']['model_error']} challenger "
        f"model errors, then disabled: {line['error']}"
    )


def test_a_challenger_that_never_returns_is_a_stuck_worker_and_exits_3(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """The champion scores every event; the challenger blocks on one: within
    --model-timeout /readyz is 503 and the batch's age shows, then the worker logs the
    stack of the challenger's code and exits 3 (it used to stall, reading ready)."""
    timeout_s = 6.0
    champion, champion_code = build_model_error_bundle(tmp_path / "champion")
    challenger, challenger_code = build_model_error_bundle(
        tmp_path / "challenger", version="2", block_at=100.0
    )
    events = [event(a=i / 10) for i in range(16)]
    events[5] = event(b=200.0)  # beyond the challenger's block_at, not the champion's
    lines = [orjson.dumps({"event_id": f"ev-{i}", **e}) for i, e in enumerate(events)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    topics = Topics(input=topic_factory(1), output=topic_factory(1), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, Stream(lines, [None] * len(lines), path))
    port = free_port()
    worker = WorkerProcess(
        bootstrap, topics, tmp_path, "hanging-challenger",
        "--trust-code", champion_code, "--trust-code", challenger_code,
        "--challenger", str(challenger), "--challenger-topic", topic_factory(1),
        "--model-timeout", str(timeout_s), "--metrics-host", "127.0.0.1",
        "--metrics-port", str(port), bundle=champion,
    )  # fmt: skip
    try:

        def stuck() -> bool:
            ready = http_get(f"http://127.0.0.1:{port}/readyz", timeout_s=2)[0]
            status, text = http_get(f"http://127.0.0.1:{port}/metrics", timeout_s=2)
            ages = [
                s.value
                for family in text_string_to_metric_families(text if status == 200 else "")
                for s in family.samples
                if s.name == "scoring_batch_in_progress_seconds"
            ]
            return ready == 503 and bool(ages) and ages[0] >= timeout_s / 2  # stuck

        poll_until("the stuck challenger to show", 2 * timeout_s + 60, stuck)
        # a deadline, not a pause: 29 s for the whole test quiet; at load 40 it took over 42
        code = worker.wait(2 * timeout_s + 120)
    finally:
        stop_all([worker])
    assert code == 3, worker.story()
    (line,) = worker.events("model_timeout")
    assert line["seconds"] >= timeout_s
    assert any("in transform" in frame for frame in line["stack"]), line["stack"]
    assert any("challengers.py" in frame for frame in line["stack"]), line["stack"]
