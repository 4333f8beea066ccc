"""The research path: `scoring-worker score` against the pipeline itself, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from examples.stream import generate_labelled_events
from harness.workers import PENGUINS_CONFIG, PENGUINS_CSV
from model_bundles.bundle import Bundle
from model_bundles.events import frame_to_events, normalize_frame
from schemas.records import PredictionRecord
from worker.cli.main import run_cli


def _write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _records(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_score_equals_predict_proba_bit_for_bit(
    penguins_bundle: Bundle, penguins_bundle_dir: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(PENGUINS_CSV)
    features = penguins_bundle.features
    events = frame_to_events(frame, features)
    for event, event_id in zip(events, frame["event_id"], strict=True):
        event["event_id"] = event_id
    events_path = _write_lines(tmp_path / "events.jsonl", [orjson.dumps(e) for e in events])
    out = tmp_path / "preds.jsonl"
    args = ["score", "--bundle", str(penguins_bundle_dir), "--input", str(events_path)]
    assert run_cli([*args, "--output", str(out)]) == 0

    records = _records(out)
    model_input = normalize_frame(frame, features)
    expected_scores = penguins_bundle.pipeline.predict_proba(model_input)
    expected_labels = penguins_bundle.pipeline.predict(model_input)
    got = np.array([[r["scores"][c] for c in ("Adelie", "Chinstrap", "Gentoo")] for r in records])  # type: ignore[index]
    assert got.dtype == np.float64 and np.array_equal(got, expected_scores)
    assert [r["prediction"] for r in records] == list(expected_labels)
    assert [r["event_id"] for r in records] == list(frame["event_id"])
    for record in records:
        PredictionRecord.model_validate(record)
        assert record["source"] is None


def test_every_batch_size_gives_the_same_bytes(penguins_bundle_dir: Path, tmp_path: Path) -> None:
    # 400 events: a model call each at batch size 1 (the model's own batch invariance
    # is test_outputs_do_not_depend_on_the_batch_size's)
    lines = [line for line, _ in generate_labelled_events(400, seed=3, poison_rate=0.02)]
    events = _write_lines(tmp_path / "events.jsonl", lines)
    outputs = []
    for size in (1, 2, 7, 1000):
        out = tmp_path / f"preds-{size}.jsonl"
        args = ["score", "--bundle", str(penguins_bundle_dir), "--input", str(events)]
        assert run_cli([*args, "--output", str(out), "--batch-size", str(size)]) == 0
        outputs.append(out.read_bytes())
    assert len(outputs[0].splitlines()) > 370
    assert all(o == outputs[0] for o in outputs[1:])


def test_bad_lines_are_reported_with_numbers_and_counted(
    penguins_bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labelled = list(generate_labelled_events(300, seed=5, poison_rate=0.1))
    events = _write_lines(tmp_path / "events.jsonl", [line for line, _ in labelled])
    out, rejects = tmp_path / "preds.jsonl", tmp_path / "rejects.jsonl"
    args = ["score", "--bundle", str(penguins_bundle_dir), "--input", str(events)]
    assert run_cli([*args, "--output", str(out), "--rejects", str(rejects)]) == 0
    expected = {n: r for n, (_, r) in enumerate(labelled, start=1) if r is not None}
    got = {r["line"]: r["reason"] for r in _records(rejects)}
    assert got == expected
    assert len(_records(out)) == len(labelled) - len(expected)
    err = capsys.readouterr().err
    first_bad = min(expected)
    assert f"events.jsonl:{first_bad}: {expected[first_bad]}:" in err
    assert f"rejected {len(expected)} (" in err


def test_a_null_category_scores_the_same_alone_and_in_a_crowd(penguins_bundle: Bundle) -> None:
    event = {
        "bill_length_mm": 45.1, "bill_depth_mm": 14.5, "flipper_length_mm": 215.0,
        "body_mass_g": 5000.0, "island": "Biscoe", "sex": None,
    }  # fmt: skip
    crowd = frame_to_events(pd.read_csv(PENGUINS_CSV).head(999), penguins_bundle.features)
    alone = penguins_bundle.predict_events([event])
    together = penguins_bundle.predict_events([*crowd, event])
    assert alone.scores is not None and together.scores is not None
    assert np.array_equal(alone.scores[0], together.scores[-1])


def _build_args(tmp_path: Path, config: Path, data: Path) -> list[str]:
    out = tmp_path / "out"
    return ["bundle", "build", "--config", str(config), "--data", str(data), "--out", str(out)]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c, d: (c.with_name("absent.toml"), d), "config file not found"),
        (lambda c, d: (c, d.with_name("absent.csv")), "data file not found"),
        (lambda c, d: (c, d.with_suffix(".txt")), "expected .csv or .parquet"),
    ],
)
def test_missing_files_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: object, message: str
) -> None:
    config, data = mutate(PENGUINS_CONFIG, PENGUINS_CSV)  # type: ignore[operator]
    assert run_cli(_build_args(tmp_path, config, data)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('estimator = "logistic_regression"', 'estimator = "quantum_forest"', "unknown estimator"),
        ('target = "species"', 'target = "wingspan"', "column(s) not in the data: wingspan"),
        ('"island", "sex"', '"island", "beak_colour"', "not in the data: beak_colour"),
        ("[model]", "[modle]", "model: Field required"),
    ],
)
def test_bad_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, message: str
) -> None:
    text = PENGUINS_CONFIG.read_text()
    assert old in text
    config = tmp_path / "config.toml"
    config.write_text(text.replace(old, new))
    assert run_cli(_build_args(tmp_path, config, PENGUINS_CSV)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_empty_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "empty.csv"
    data.write_text(PENGUINS_CSV.read_text().splitlines()[0] + "\n")
    assert run_cli(_build_args(tmp_path, PENGUINS_CONFIG, data)) == 2
    assert "has no rows" in capsys.readouterr().err


SMALL_SIZE_EVENTS = 300


@pytest.mark.parametrize("bundle_name", ["penguins_bundle", "mass_bundle"])
def test_outputs_do_not_depend_on_the_batch_size(
    bundle_name: str, request: pytest.FixtureRequest
) -> None:
    """Matrix-vector (ridge) and matrix-matrix (logistic) products alike: BLAS
    leftover-row kernels must never see one of our rows."""
    bundle: Bundle = request.getfixturevalue(bundle_name)
    lines = generate_labelled_events(1200, seed=11, with_species=True)
    events = [e for line, _ in lines if bundle.check_event(e := orjson.loads(line)) is None]
    whole = bundle.predict_events(events)
    for size in (1, 2, 3, 5, 7, 13, 64, 1000):
        # the small sizes over the first SMALL_SIZE_EVENTS events (a model call each):
        # without the padding 2-40 % of rows differ, so that many still fail it
        count = len(events) if size > 7 else SMALL_SIZE_EVENTS
        chunks = [events[i : min(i + size, count)] for i in range(0, count, size)]
        parts = [bundle.predict_events(chunk) for chunk in chunks]
        predictions = np.concatenate([p.predictions for p in parts])
        assert np.array_equal(predictions, whole.predictions[:count]), f"batch size {size}"
        if whole.scores is not None:
            scores = np.concatenate([p.scores for p in parts if p.scores is not None])
            assert np.array_equal(scores, whole.scores[:count]), f"batch size {size}"
