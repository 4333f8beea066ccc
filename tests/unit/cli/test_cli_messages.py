"""Exit codes and messages as README's scheme says (issue 15's cases, one test each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.workers import PENGUINS_CONFIG, PENGUINS_CSV
from worker.cli.main import run_cli


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _events(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_a_missing_bundle_directory_is_bad_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = _events(tmp_path, [b"{}"])
    args = ["score", "--bundle", str(tmp_path / "nope"), "--input", str(events)]
    assert run_cli([*args, "--output", str(tmp_path / "p.jsonl")]) == 2
    line = _one_line(capsys)
    assert "nope" in line and "does not exist" in line
    assert run_cli(["bundle", "verify", str(tmp_path / "nope")]) == 2


def test_an_unwritable_output_is_bad_input_before_the_bundle_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = _events(tmp_path, [b"{}"])
    output = tmp_path / "missing-dir" / "p.jsonl"
    bundle = tmp_path / "not-a-bundle"  # exists, but loading it would fail with exit 1
    bundle.mkdir()
    args = ["score", "--bundle", str(bundle), "--input", str(events), "--output", str(output)]
    assert run_cli(args) == 2
    assert _one_line(capsys) == (
        f"scoring-worker: error: cannot write {output}: no directory {output.parent}"
    )


def test_score_exits_1_when_nothing_was_scored(
    penguins_bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = _events(tmp_path, [b"not json", b"[1, 2]"])
    out = tmp_path / "p.jsonl"
    args = ["score", "--bundle", str(penguins_bundle_dir), "--input", str(events)]
    assert run_cli([*args, "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "scoring-worker: error: no event scored (2 rejected)"


def test_a_semicolon_csv_names_the_columns_there_and_hints_at_the_delimiter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "penguins.csv"
    data.write_text(PENGUINS_CSV.read_text().replace(",", ";"))
    args = ["bundle", "build", "--config", str(PENGUINS_CONFIG), "--data", str(data)]
    assert run_cli([*args, "--out", str(tmp_path / "out")]) == 2
    line = _one_line(capsys)
    assert "not in the data" in line and "the data has: event_id;" in line
    assert "delimited by something other than a comma" in line


def test_a_feature_listed_twice_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    text = PENGUINS_CONFIG.read_text()
    config.write_text(
        text.replace('categorical = ["island", "sex"]', 'categorical = ["island", "body_mass_g"]')
    )
    args = ["bundle", "build", "--config", str(config), "--data", str(PENGUINS_CSV)]
    assert run_cli([*args, "--out", str(tmp_path / "out")]) == 2
    assert "a feature is listed twice: body_mass_g" in _one_line(capsys)
