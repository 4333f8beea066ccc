"""The id a record carries is visible, and ids that do not join are explained (issue 28,
item 11).

A bundle whose ``id_column`` names a field that is not unique (``year`` of the penguins
data) gives records whose ``event_id`` repeats: ``parity`` used to say FAILED and
``evaluate`` "0 labelled events predicted by every model", with nothing about ids.
"""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

from harness.workers import PENGUINS_CONFIG, PENGUINS_CSV
from worker.cli.main import run_cli

FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]


@pytest.fixture(scope="module")
def by_year(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The penguins bundle with ``id_column = "year"`` (three values for 344 rows)."""
    where = tmp_path_factory.mktemp("by-year")
    config = where / "config.toml"
    config.write_text(
        PENGUINS_CONFIG.read_text().replace('id_column = "event_id"', 'id_column = "year"')
    )
    assert run_cli(["bundle", "build", "--config", str(config), "--data", str(PENGUINS_CSV),
                    "--out", str(where / "bundle")]) == 0  # fmt: skip
    return where / "bundle"


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The penguins rows as events (own event_id and year), and their species."""
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    rows = list(csv.DictReader(PENGUINS_CSV.open()))
    lines = []
    for row in rows:
        event = {k: row[k] for k in ("event_id", "year", *FEATURES) if row[k] not in ("", "NA")}
        for k in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"):
            if k in event:
                event[k] = float(event[k])
        lines.append(orjson.dumps(event))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, [r["species"] for r in rows]


def score(bundle: Path, events: Path, out: Path) -> Path:
    assert run_cli(["score", "--bundle", str(bundle), "--input", str(events),
                    "--output", str(out)]) in (0, 1)  # fmt: skip
    return out


def test_inspect_names_the_id_field(
    by_year: Path, penguins_bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["bundle", "inspect", str(by_year)]) == 0
    assert run_cli(["bundle", "inspect", str(penguins_bundle_dir)]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("ids: ")]
    assert lines == [
        "ids: records' event_id is the event's 'year' field (id_column; must be unique per event)",
        "ids: records' event_id is the event's 'event_id' field (id_column; must be unique "
        "per event)",
    ]


def test_parity_with_a_repeating_id_column_says_the_ids_repeat(
    by_year: Path, events: tuple[Path, list[str]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    research = score(by_year, events[0], tmp_path / "research.jsonl")
    live = tmp_path / "live.jsonl"  # the same records as a consumer would see them: reordered
    live.write_bytes(b"".join(reversed(research.read_bytes().splitlines(keepends=True))))
    capsys.readouterr()
    assert run_cli(["parity", "--expected", str(research), "--actual", str(live)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "parity: FAILED"
    hint = next(x for x in out if x.startswith("ids: "))
    assert f"ids repeat in {research} (e.g. 2007, 2008, 2009)" in hint
    assert "id_column" in hint


def test_parity_of_two_id_fields_shows_ids_from_each_side(
    by_year: Path, penguins_bundle_dir: Path, events: tuple[Path, list[str]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    own = score(penguins_bundle_dir, events[0], tmp_path / "own-ids.jsonl")
    years = score(by_year, events[0], tmp_path / "year-ids.jsonl")
    capsys.readouterr()
    assert run_cli(["parity", "--expected", str(own), "--actual", str(years), "--json"]) == 1
    report = orjson.loads(capsys.readouterr().out)
    assert report["id_hint"].startswith(
        f"event ids differ: {own} has e.g. penguin-0001, penguin-0002, penguin-0003; "
        f"{years} has e.g. 2007, 2008, 2009"
    )


def test_evaluate_explains_zero_joined_events_with_ids_from_each_side(
    by_year: Path, events: tuple[Path, list[str]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    predictions = score(by_year, events[0], tmp_path / "predictions.jsonl")
    labels = tmp_path / "labels.jsonl"
    ids = [orjson.loads(x)["event_id"] for x in events[0].read_bytes().splitlines()]
    labels.write_bytes(b"".join(orjson.dumps({"event_id": i, "label": s}) + b"\n"
                                for i, s in zip(ids, events[1], strict=True)))  # fmt: skip
    capsys.readouterr()
    code = run_cli(["evaluate", "--labels", str(labels), "--predictions", str(predictions)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "0 labelled events predicted by every model" in err[0]
    assert "labels has e.g. penguin-0001, penguin-0002, penguin-0003" in err[0]
    assert f"{predictions} has e.g. 2007, 2008, 2009" in err[0]
    assert f"ids repeat in {predictions}" in err[0]
