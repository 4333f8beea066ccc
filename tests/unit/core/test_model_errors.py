"""A model that fails on one event fails that event only (issue 26), without a broker."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_bundles.bundle import Bundle, load_bundle
from schemas.wire_names import HEADER_ERROR_MESSAGE, HEADER_ERROR_TYPE, HEADER_REASON
from tests.support.model_error_fixtures import RAISE_AT, UNKNOWN, build_model_error_bundle, event
from worker.core.events import InputEvent
from worker.core.model_errors import (
    CIRCUIT_BATCHES,
    MAX_MESSAGE_CHARS,
    ModelErrorRejection,
    ModelFailure,
    describe,
)
from worker.core.scoring import BatchScorer
from worker.live.deadletter import dead_letter_messages


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    path, digest = build_model_error_bundle(tmp_path_factory.mktemp("model-errors"))
    return load_bundle(path, trust_code=[digest])


def _inputs(events: list[dict[str, Any]]) -> list[InputEvent]:
    return [
        InputEvent(orjson.dumps({**e, "event_id": f"e{i}"}), key=f"k{i}".encode(), offset=i)
        for i, e in enumerate(events)
    ]


_event = st.builds(
    event,
    a=st.floats(-3.0, 3.0, allow_nan=False),
    b=st.floats(0.0, 20.0, allow_nan=False),
    colour=st.sampled_from(["red", "green", "blue"]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(st.tuples(_event, st.booleans()), min_size=1, max_size=90),
)
def test_each_raising_event_is_one_dead_letter_and_every_other_record_is_scored_as_alone(
    bundle: Bundle, events: list[tuple[dict[str, Any], bool]]
) -> None:
    batch = [{**e, "a": RAISE_AT + i} if raises else e for i, (e, raises) in enumerate(events)]
    inputs = _inputs(batch)
    scored = BatchScorer(bundle).score(inputs)

    raising = [i for i, (_, raises) in enumerate(events) if raises]
    assert [r.index for r in scored.rejected] == raising
    for r in scored.rejected:
        assert r.rejection.reason == "model_error"
        assert isinstance(r.rejection, ModelErrorRejection)
        assert r.rejection.error_type == "ValueError"
        assert (
            r.rejection.error_message == f"a is np.float64({RAISE_AT + r.index}), beyond {RAISE_AT}"
        )
    assert scored.indices == [i for i in range(len(events)) if i not in raising]
    alone = BatchScorer(bundle)  # a fresh scorer: no circuit count carried over
    for i, record in zip(scored.indices, scored.records, strict=True):
        assert alone.score([inputs[i]]).records == [record]  # bit for bit
    assert len(scored.frame) == len(scored.records) == len(scored.outputs)


def test_unknown_category_is_a_model_error_with_the_encoders_message(bundle: Bundle) -> None:
    inputs = _inputs([event(), event(colour=UNKNOWN), event(a=-1.0)])
    scored = BatchScorer(bundle).score(inputs)
    assert scored.indices == [0, 2]
    (rejected,) = scored.rejected
    assert rejected.index == 1
    assert rejected.rejection.detail == (
        "ValueError: Found unknown categories ['Atlantis'] in column 0 during transform"
    )
    (message,) = dead_letter_messages(
        inputs, scored.rejected, topic="dlq", bundle_digest=bundle.digest, max_value_bytes=1000
    )
    headers = dict(message.headers or [])
    assert headers[HEADER_REASON] == b"model_error"
    assert headers[HEADER_ERROR_TYPE] == b"ValueError"
    assert headers[HEADER_ERROR_MESSAGE].startswith(b"Found unknown categories ['Atlantis']")
    assert message.value == inputs[1].value and message.key == b"k1"


def test_a_batch_with_no_model_error_makes_one_model_call(
    bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = Bundle.predict_model_frame

    def counting(self: Bundle, frame: Any) -> Any:
        calls.append(len(frame))
        return real(self, frame)

    monkeypatch.setattr(Bundle, "predict_model_frame", counting)
    scorer = BatchScorer(bundle)
    scorer.score(_inputs([event(), event(a=1.0), event(a=2.0)]))
    assert calls == [3]


def test_every_event_failing_in_batches_in_a_row_stops_the_worker_naming_the_exception(
    bundle: Bundle,
) -> None:
    scorer = BatchScorer(bundle)
    batch = [event(colour=UNKNOWN) for _ in range(5)]
    for _ in range(CIRCUIT_BATCHES - 1):  # golden scores: the events' fault, for now
        assert len(scorer.score(_inputs(batch)).rejected) == 5
    with pytest.raises(ModelFailure, match=r"every event of 3 batches in a row .*ValueError"):
        scorer.score(_inputs(batch))


def test_a_scored_event_between_failing_batches_resets_the_count(bundle: Bundle) -> None:
    scorer = BatchScorer(bundle)
    failing = [event(colour=UNKNOWN) for _ in range(5)]
    for _ in range(3):
        for _ in range(CIRCUIT_BATCHES - 1):
            scorer.score(_inputs(failing))
        assert scorer.score(_inputs([event(), *failing])).indices == [0]


def test_a_few_lone_poison_events_on_a_quiet_topic_do_not_stop_the_worker(bundle: Bundle) -> None:
    scorer = BatchScorer(bundle)
    for _ in range(CIRCUIT_BATCHES + 2):  # one event per batch: fewer than CIRCUIT_EVENTS
        assert len(scorer.score(_inputs([event(colour=UNKNOWN)])).rejected) == 1


def test_the_golden_sample_failing_too_stops_at_the_first_batch(
    bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment is broken (here: every model call raises): exit 3, no dead letter."""

    def broken(*_args: Any) -> Any:
        raise OSError("feature store unreachable at https://user:hunter2@fs.internal/x")

    monkeypatch.setattr(Bundle, "predict_model_frame", broken)
    monkeypatch.setattr(Bundle, "predict_events", broken)
    scorer = BatchScorer(bundle)
    with pytest.raises(ModelFailure, match="golden sample too") as raised:
        scorer.score(_inputs([event(), event()]))
    assert "hunter2" not in str(raised.value) and "OSError" in str(raised.value)


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("first\nsecond", "first"),
        ("x" * 500, "x" * (MAX_MESSAGE_CHARS - 3) + "..."),
        ("GET https://alice:s3cret@api.example/v1 failed", "GET https://***@api.example/v1 failed"),
        ("bad password=hunter2 token: abc", "bad password=*** token: ***"),
        ("", ""),
    ],
)
def test_the_exception_line_is_bounded_and_masks_secrets(message: str, shown: str) -> None:
    assert describe(RuntimeError(message)) == ("RuntimeError", shown)


def test_score_command_writes_model_errors_to_the_rejects_file(
    bundle: Bundle, tmp_path: Path
) -> None:
    from worker.research.score import score_file

    source = tmp_path / "events.jsonl"
    source.write_bytes(
        b"\n".join(i.value or b"" for i in _inputs([event(), event(colour=UNKNOWN)]))
    )
    lines: list[str] = []
    summary = score_file(
        bundle, source, tmp_path / "out.jsonl", tmp_path / "rejects.jsonl", 100, None, lines.append
    )
    assert summary.scored == 1 and summary.rejected == {"model_error": 1}
    (reject,) = [orjson.loads(x) for x in (tmp_path / "rejects.jsonl").read_bytes().splitlines()]
    assert reject["line"] == 2 and reject["reason"] == "model_error"
    assert lines == [f"{source}:2: model_error: {reject['detail']}"]


class _FailsTogether:
    """The pipeline, except that a batch mixing two colours raises (as two datetimes in
    different ISO forms make one ``pd.to_datetime`` call raise while each alone parses)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.classes_ = pipeline.classes_

    def _check(self, frame: Any) -> None:
        if frame["colour"].nunique() > 1:
            raise ValueError("mixed forms in one batch")

    def predict_proba(self, frame: Any) -> Any:
        self._check(frame)
        return self.pipeline.predict_proba(frame)


def test_events_that_fail_only_together_are_each_scored_as_alone(bundle: Bundle) -> None:
    mixed = dataclasses.replace(bundle, pipeline=_FailsTogether(bundle.pipeline))
    inputs = _inputs([event(colour="red"), event(a=1.0, colour="blue"), event(a=2.0)])
    scored = BatchScorer(mixed).score(inputs)
    assert scored.rejected == [] and scored.indices == [0, 1, 2]
    alone = BatchScorer(bundle)
    assert scored.records == [alone.score([i]).records[0] for i in inputs]


def test_unknown_categories_count_only_the_events_scored(bundle: Bundle, tmp_path: Path) -> None:
    """An unknown colour that became a model_error dead letter was not scored: ``score``
    must not print it as ``unknown categories scored`` (nor the worker count it)."""
    from worker.research.score import score_file

    scored = BatchScorer(bundle).score(_inputs([event(), event(colour=UNKNOWN), event()]))
    assert scored.indices == [0, 2] and scored.unknown_categories == {}
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(i.value or b"" for i in _inputs([event(colour=UNKNOWN)])))
    summary = score_file(
        bundle, source, tmp_path / "out.jsonl", tmp_path / "rejects.jsonl", 100, None, print
    )
    assert summary.unknown_categories == {}
    line = summary.line(tmp_path / "out.jsonl")
    assert line.startswith("scored 0 events, rejected 1 (model_error 1)")
    assert "unknown categories" not in line
