"""A model that fails on one event fails that event only (issue 26), on the real broker.

The bundle (``tests/support/model_error_fixtures.py``) keeps scikit-learn's default
``OneHotEncoder(handle_unknown="error")`` and carries a trusted transformer with test
hooks: block on ``b >= 1000``, and (``GATE_ENV`` set) stop inside the model call that
isolates the unknown-category event, so the worker can be killed in the middle of it.
"""

from __future__ import annotations

import subprocess
import time
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from kafka_broker import TopicFactory, poll_until
from prometheus_client.parser import text_string_to_metric_families
from worker_harness import SCORING_WORKER, Stream, Topics, WorkerProcess, produce_stream, stop_all
from worker_verify import read_predictions, read_with_headers

from harness.http import http_get
from harness.ports import free_port
from tests.support.model_error_fixtures import (
    BLOCK_AT,
    GATE_ENV,
    UNKNOWN,
    build_model_error_bundle,
    event,
)

UNKNOWN_MESSAGE = f"Found unknown categories ['{UNKNOWN}'] in column 0 during transform"


@pytest.fixture(scope="module")
def model_error_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return build_model_error_bundle(tmp_path_factory.mktemp("model-errors"))


def _stream(directory: Path, events: list[dict[str, object]]) -> Stream:
    lines = [orjson.dumps({"event_id": f"ev-{i}", **e}) for i, e in enumerate(events)]
    path = directory / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return Stream(lines, [None] * len(lines), path)


def test_unknown_category_is_one_dead_letter_exactly_once_across_a_kill_mid_batch(
    bootstrap: str,
    topic_factory: TopicFactory,
    tmp_path: Path,
    model_error_bundle: tuple[Path, str],
) -> None:
    bundle, digest = model_error_bundle
    trust = ("--trust-code", digest)
    stream = _stream(tmp_path, [event(), event(colour=UNKNOWN), event(a=-1.0, colour="blue")])
    topics = Topics(input=topic_factory(1), output=topic_factory(1), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, stream)
    gate = tmp_path / "gate"
    workers: list[WorkerProcess] = []
    try:
        first = WorkerProcess(
            bootstrap, topics, tmp_path, "model-errors", *trust,
            bundle=bundle, extra_env={GATE_ENV: str(gate)},
        )  # fmt: skip
        workers.append(first)
        poll_until("the worker to stop inside the isolating model call", 120, gate.exists)
        first.kill()  # kill -9 in the middle of the batch
        second = WorkerProcess(
            bootstrap, topics, tmp_path, "model-errors", *trust, "--idle-timeout", "5",
            bundle=bundle,
        )  # fmt: skip
        workers.append(second)
        assert second.wait(180) == 0, second.story()
    finally:
        stop_all(workers)

    records = read_predictions(bootstrap, topics.output, 2)
    bodies = [orjson.loads(r.value or b"") for r in records]
    assert [b["event_id"] for b in bodies] == ["ev-0", "ev-2"]  # once each, in order
    assert [r.key for r in records] == [b"k0", b"k2"]
    (letter,) = read_with_headers(bootstrap, topics.dlq, 1)
    assert letter.value == stream.lines[1] and letter.key == b"k1"
    assert letter.headers["scoring.reason"] == b"model_error"
    assert letter.headers["scoring.error.type"] == b"ValueError"
    assert letter.headers["scoring.error.message"] == UNKNOWN_MESSAGE.encode()
    assert letter.headers["scoring.source.offset"] == b"1"

    # the research path agrees, record for record, and shows the same dead letter
    out, rejects = tmp_path / "research.jsonl", tmp_path / "rejects.jsonl"
    score = [SCORING_WORKER, "score", "--bundle", str(bundle), *trust]
    score += ["--input", str(stream.path), "--output", str(out), "--rejects", str(rejects)]
    done = subprocess.run(score, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    research = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [{**b, "source": None} for b in bodies] == research
    (reject,) = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert reject["reason"] == "model_error" and reject["line"] == 2
    assert reject["detail"] == f"ValueError: {UNKNOWN_MESSAGE}"


def _scrape(port: int, topic: str) -> dict[str, float]:
    status, text = http_get(f"http://127.0.0.1:{port}/metrics", timeout_s=2)
    found: dict[str, float] = {}
    if status != 200:
        return found
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "scoring_consumer_lag" and s.labels.get("topic") == topic:
                found["lag"] = found.get("lag", 0.0) + s.value
            elif s.name in ("scoring_ready", "scoring_batch_in_progress_seconds"):
                found[s.name] = s.value
    found["readyz"] = float(http_get(f"http://127.0.0.1:{port}/readyz", timeout_s=2)[0])
    return found


def test_a_model_call_that_never_returns_shows_and_ends_with_exit_3(
    bootstrap: str,
    topic_factory: TopicFactory,
    tmp_path: Path,
    model_error_bundle: tuple[Path, str],
) -> None:
    """Trusted code blocks on one event: within 2 x --model-timeout /readyz is 503,
    scoring_ready 0, the lag gauge counts every waiting event and the batch's age shows;
    at the timeout the worker logs the scoring thread's stack and exits 3."""
    timeout_s = 6.0
    bundle, digest = model_error_bundle
    events = [event(a=i / 10) for i in range(16)]
    events[5] = event(b=BLOCK_AT + 1)
    stream = _stream(tmp_path, events)
    topics = Topics(input=topic_factory(1), output=topic_factory(1), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, stream)
    port = free_port()
    worker = WorkerProcess(
        bootstrap, topics, tmp_path, "model-hangs", "--trust-code", digest,
        "--model-timeout", str(timeout_s), "--metrics-host", "127.0.0.1",
        "--metrics-port", str(port), bundle=bundle,
    )  # fmt: skip
    try:
        assigned = worker.wait_event("assigned", 120)
        assigned_at = datetime.fromisoformat(assigned["ts"]).timestamp()

        def shows_stuck() -> dict[str, float] | None:
            found = _scrape(port, topics.input)
            stuck = (
                found.get("readyz") == 503
                and found.get("scoring_ready") == 0
                and found.get("lag") == len(events)
                and found.get("scoring_batch_in_progress_seconds", 0) > 0
            )
            return found if stuck else None

        state = poll_until("the stuck model to show", 2 * timeout_s + 5, shows_stuck)
        shown_after_s = time.time() - assigned_at
        code = worker.wait(2 * timeout_s + 30)
    finally:
        stop_all([worker])
    print(f"stuck model shown {shown_after_s:.1f}s after assignment: {state}")
    assert shown_after_s <= 2 * timeout_s, state
    assert code == 3, worker.story()
    (line,) = worker.events("model_timeout")
    assert line["events"] == len(events) and line["seconds"] >= timeout_s
    assert any("in transform" in frame for frame in line["stack"]), line["stack"]
    text = worker.log_path.read_text()
    assert "scoring-worker: error: the model did not return within --model-timeout 6s" in text
