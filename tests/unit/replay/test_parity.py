"""Parity: bit-for-bit comparison by event id, its report, and the `parity` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.cli.main import run_cli
from worker.core.recording import RecordedMessage, encode_message
from worker.replay.parity import ParityChecker, compare
from worker.replay.parity_report import to_json, to_text

MODEL = {"name": "m", "version": "1", "digest": "sha256:aa"}
OTHER = {"name": "m", "version": "2", "digest": "sha256:bb"}


def rec(event_id: str, prediction: Any, scores: dict[str, float] | None, **extra: Any) -> bytes:
    record = {"event_id": event_id, "prediction": prediction, "scores": scores, "model": MODEL}
    return orjson.dumps({**record, **extra})


def classify(event_id: str, a: float, model: dict[str, str] = MODEL) -> bytes:
    label = "A" if a >= 0.5 else "B"
    return orjson.dumps(
        {"event_id": event_id, "prediction": label, "scores": {"A": a, "B": 1 - a}, "model": model}
    )


finite = st.floats(allow_nan=False, allow_infinity=False)
records = st.dictionaries(
    st.text(min_size=1, max_size=6),
    st.tuples(st.sampled_from(["A", "B"]), st.dictionaries(st.sampled_from("AB"), finite)),
    max_size=20,
)


@given(records)
def test_a_file_is_identical_to_itself_in_any_order(items: dict[str, Any]) -> None:
    lines = [rec(i, p, s) for i, (p, s) in items.items()]
    result = compare(lines, list(reversed(lines)))
    assert result.ok
    assert (result.matched, result.identical, result.mismatched) == (len(items), len(items), 0)
    assert result.agreement_rate == (1.0 if items else None)
    assert all(d.max_abs == 0 for d in result.score_diff.values())


def test_source_and_model_are_not_compared_but_outputs_are_bit_for_bit() -> None:
    research = [rec("e1", "A", {"A": 0.75, "B": 0.25})]
    live = [rec("e1", "A", {"A": 0.75, "B": 0.25}, source={"topic": "t", "partition": 0})]
    assert compare(research, live).ok
    one_ulp = 0.75 + 2**-53
    result = compare(research, [rec("e1", "A", {"A": one_ulp, "B": 0.25})])
    assert not result.ok
    assert result.mismatched == 1 and result.agreed == 1  # same label, different bits
    assert result.score_diff["A"].max_abs == pytest.approx(2**-53)
    assert not compare([rec("e", 0.0, None)], [rec("e", -0.0, None)]).ok  # the sign bit counts


def test_missing_events_on_either_side_fail_and_are_listed() -> None:
    result = compare(
        [classify("a", 0.9), classify("b", 0.1)], [classify("b", 0.1), classify("c", 0.2)]
    )
    assert not result.ok
    assert result.missing_in_actual == ["a"]
    assert result.missing_in_expected == ["c"]
    assert result.matched == 1 and result.mismatched == 0


def test_duplicates_are_reported_and_fail_only_when_they_disagree() -> None:
    same = compare([classify("a", 0.9)], [classify("a", 0.9), classify("a", 0.9)])
    assert same.ok and same.actual.duplicates == 1
    differ = compare([classify("a", 0.9)], [classify("a", 0.9), classify("a", 0.8)])
    assert not differ.ok and differ.mismatched == 1 and differ.matched == 1
    conflict = compare([classify("a", 0.9), classify("a", 0.8)], [classify("a", 0.9)])
    assert not conflict.ok and conflict.expected.conflicting == 1


def test_model_comparison_reports_agreement_and_drift_per_label() -> None:
    old = [classify(f"e{i}", a) for i, a in enumerate([0.9, 0.8, 0.3, 0.6])]
    new = [classify(f"e{i}", a, OTHER) for i, a in enumerate([0.9, 0.7, 0.6, 0.4])]
    result = compare(old, new)
    assert result.agreement_rate == 0.5
    assert result.score_diff["A"].max_abs == pytest.approx(0.3)
    assert result.score_diff["A"].mean_abs == pytest.approx((0 + 0.1 + 0.3 + 0.2) / 4)
    assert dict(result.label_changes) == {("B", "A"): 1, ("A", "B"): 1}
    report = to_json(result)
    assert report["expected"]["models"] == {"m 1 sha256:aa": 4}
    assert report["actual"]["models"] == {"m 2 sha256:bb": 4}
    assert report["label_changes"] == [
        {"expected": "A", "actual": "B", "count": 1},
        {"expected": "B", "actual": "A", "count": 1},
    ]
    assert [m["event_id"] for m in report["first_mismatches"]] == ["e1", "e2", "e3"]


def test_regression_outputs_get_a_prediction_difference() -> None:
    result = compare(
        [rec("a", 4000.0, None), rec("b", 3500.5, None)],
        [rec("a", 4000.0, None), rec("b", 3500.0, None)],
    )
    assert result.prediction_diff is not None
    assert result.prediction_diff.max_abs == 0.5 and result.prediction_diff.mean_abs == 0.25
    assert not result.label_changes and result.agreed == 1
    assert "prediction |difference|: max 0.5, mean 0.25" in to_text(result)


def test_a_recording_of_a_prediction_topic_is_unwrapped() -> None:
    value = classify("a", 0.9)
    recorded = encode_message(RecordedMessage("out", 0, 3, 1, "create_time", b"k", value))
    assert compare([value], [recorded]).ok


def test_the_checker_counts_comparisons_batch_by_batch() -> None:
    checker = ParityChecker("expected", "replay")
    checker.add_expected([classify("a", 0.9), classify("b", 0.1)])
    assert checker.add_actual([classify("a", 0.9), classify("x", 0.5)]) == (1, 0)
    assert checker.add_actual([classify("b", 0.2)]) == (1, 1)
    result = checker.finish()
    assert (result.matched, result.mismatched, result.missing_in_expected) == (2, 1, ["x"])


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_parity_command_exit_codes_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path / "a.jsonl", [classify("a", 0.9), classify("b", 0.1)])
    b = write(tmp_path / "b.jsonl", [classify("b", 0.1), classify("a", 0.9)])
    c = write(tmp_path / "c.jsonl", [classify("a", 0.9)])
    assert run_cli(["parity", "--expected", str(a), "--actual", str(b)]) == 0
    assert capsys.readouterr().out.strip().endswith("parity: OK")
    assert run_cli(["parity", "--expected", str(a), "--actual", str(c), "--json"]) == 1
    report = orjson.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["missing_in_actual"] == 1
    assert report["first_missing_in_actual"] == ["b"]


def test_parity_command_bad_files_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path / "good.jsonl", [classify("a", 0.9)])
    bad = write(tmp_path / "bad.jsonl", [classify("a", 0.9), b'{"prediction": "A"}'])
    assert run_cli(["parity", "--expected", str(good), "--actual", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"scoring-worker: error: {bad}:2: not a prediction record (no string event_id)"]
    assert run_cli(["parity", "--expected", str(tmp_path / "none"), "--actual", str(good)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_repeated_ids_are_paired_in_order() -> None:
    expected = [classify("a", 0.9), classify("a", 0.8), classify("b", 0.1)]
    assert compare(expected, expected).ok
    swapped = compare(expected, [classify("a", 0.8), classify("a", 0.9), classify("b", 0.1)])
    assert not swapped.ok and (swapped.matched, swapped.mismatched) == (3, 2)
    short = compare(expected, [classify("a", 0.9), classify("b", 0.1)])
    assert not short.ok and short.missing_in_actual == ["a"]
    redelivered = compare(expected, [*expected, classify("a", 0.8)])
    assert redelivered.ok and redelivered.actual.duplicates == 2
