"""Tests of the demo event stream (examples/stream.py) and its data provenance.

The demo and the integration tests trust this generator's ground truth (which
lines are poison, which reason the worker must give, how much a feature
drifted), so these tests check the lines themselves against an independent
reading of SPEC.md rather than trusting the labels.
"""

from __future__ import annotations

import json
import math
import statistics
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from examples.penguins.make_csv import CSV_PATH, render_csv
from examples.stream import (
    EXPECTED_REASON,
    FEATURES,
    LARGE_PAYLOAD_BYTES,
    NUMERIC_FEATURES,
    POISON_KINDS,
    REASON_CODES,
    Drift,
    generate_events,
    generate_labelled_events,
    generate_tagged_events,
    main,
    parse_drift,
)


def spec_reason(line: bytes) -> str | None:
    """Reject reason per SPEC.md, derived from the bytes alone: the oracle for the labels."""
    if len(line) > 1024 * 1024:
        return "too_large"
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(line)  # accepts NaN/Infinity, rejects everything else
        except ValueError:
            return "invalid_json"
    if not isinstance(value, dict):
        return "not_an_object"
    if any(feature not in value for feature in FEATURES):
        return "missing_feature"
    for feature in NUMERIC_FEATURES:
        number = value[feature]
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
            return "wrong_type"
        if isinstance(number, float) and not math.isfinite(number):
            return "non_finite"
    return None


def column(lines: list[bytes], feature: str) -> list[float]:
    """Non-null values of one numeric feature across valid lines."""
    values = [orjson.loads(line)[feature] for line in lines]
    return [float(v) for v in values if v is not None]


def test_csv_is_rebuilt_byte_identically_from_palmerpenguins() -> None:
    assert render_csv() == CSV_PATH.read_bytes()


def test_csv_shape_and_missing_values() -> None:
    text = CSV_PATH.read_text(encoding="utf-8").splitlines()
    assert text[0].split(",") == [
        "event_id",
        "species",
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    ]
    assert len(text) == 345
    assert text[1].startswith("penguin-0001,Adelie,Torgersen,39.1,18.7,181,3750,male,2007")
    assert text[4] == "penguin-0004,Adelie,Torgersen,,,,,,2007"


def test_same_options_give_the_same_bytes() -> None:
    drift = [parse_drift("bill_length_mm=+6"), parse_drift("sex=male")]
    first = list(generate_events(2000, 5, drift, poison_rate=0.2))
    second = list(generate_events(2000, 5, drift, poison_rate=0.2))
    assert first == second


def test_different_seeds_give_different_streams() -> None:
    assert list(generate_events(200, 0)) != list(generate_events(200, 1))


def test_shorter_stream_is_a_prefix_of_a_longer_one() -> None:
    assert list(generate_events(300, 2)) == list(generate_events(5000, 2))[:300]


def test_cli_output_is_deterministic_and_matches_the_function(tmp_path: Path) -> None:
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for path in paths:
        argv = ["--events", "500", "--seed", "9", "--poison-rate", "0.1", "--output", str(path)]
        assert main([*argv, "--drift", "island=Dream"]) == 0
    expected = b"".join(
        line + b"\n"
        for line in generate_events(500, 9, [parse_drift("island=Dream")], poison_rate=0.1)
    )
    assert paths[0].read_bytes() == paths[1].read_bytes() == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["--events", "-1"],
        ["--events", "ten"],
        ["--drift", "wingspan=+3"],
        ["--drift", "bill_length_mm=long"],
        ["--drift", "island=Dream", "--drift", "island=Biscoe"],
        ["--poison-rate", "1.5"],
        ["--rate", "0"],
        ["--start-time", "yesterday"],
        ["--no-such-option"],
    ],
)
def test_cli_bad_option_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1


def test_numeric_drift_shifts_only_that_feature() -> None:
    base = list(generate_events(4000, 3))
    drifted = list(generate_events(4000, 3, [parse_drift("bill_length_mm=+6")]))
    shift = statistics.fmean(column(drifted, "bill_length_mm")) - statistics.fmean(
        column(base, "bill_length_mm")
    )
    assert shift == pytest.approx(6.0, abs=0.05)  # only rounding to 0.1 mm separates them
    for feature in (*FEATURES, "ts"):
        if feature != "bill_length_mm":
            assert [orjson.loads(x)[feature] for x in drifted] == [
                orjson.loads(x)[feature] for x in base
            ]


def test_numeric_drift_is_visible_against_an_independent_stream() -> None:
    base = list(generate_events(4000, 10))
    drifted = list(generate_events(4000, 11, [parse_drift("body_mass_g=-500")]))
    for feature in NUMERIC_FEATURES:
        difference = statistics.fmean(column(drifted, feature)) - statistics.fmean(
            column(base, feature)
        )
        spread = statistics.stdev(column(base, feature))
        expected = -500.0 if feature == "body_mass_g" else 0.0
        assert difference == pytest.approx(expected, abs=0.1 * spread)


def test_categorical_drift_forces_the_category_about_half_the_time() -> None:
    def dream_share(lines: list[bytes]) -> float:
        return sum(bool(orjson.loads(x)["island"] == "Dream") for x in lines) / len(lines)

    base = dream_share(list(generate_events(4000, 4)))
    drifted = dream_share(list(generate_events(4000, 4, [parse_drift("island=Dream")])))
    assert 0.30 < base < 0.42
    assert drifted == pytest.approx(base + 0.5 * (1 - base), abs=0.03)
    strong = dream_share(list(generate_events(4000, 4, [parse_drift("island=Dream@1")])))
    assert strong == 1.0


def test_unseen_category_drift_writes_a_new_category() -> None:
    lines = list(generate_events(2000, 4, [parse_drift("island=Anvers@0.25")]))
    share = sum(orjson.loads(x)["island"] == "Anvers" for x in lines) / len(lines)
    assert share == pytest.approx(0.25, abs=0.03)


def test_parse_drift() -> None:
    assert parse_drift("bill_length_mm=+6") == Drift("bill_length_mm", shift=6.0)
    assert parse_drift("body_mass_g=-250.5") == Drift("body_mass_g", shift=-250.5)
    assert parse_drift("island=Dream") == Drift("island", category="Dream", probability=0.5)
    assert parse_drift("sex=male@0.9") == Drift("sex", category="male", probability=0.9)
    for bad in ["bill_length_mm", "=3", "bill_length_mm=", "beak=+1", "bill_depth_mm=nan"]:
        with pytest.raises(ValueError):
            parse_drift(bad)


def test_poison_rate_kinds_and_labels() -> None:
    n, rate = 9000, 0.2
    tagged = list(generate_tagged_events(n, 6, poison_rate=rate))
    poisoned = [t for t in tagged if t.kind is not None]
    assert abs(len(poisoned) - n * rate) < 5 * math.sqrt(n * rate * (1 - rate))
    kinds = [k for k in POISON_KINDS if k != "too_large"]
    assert [t.kind for t in poisoned] == [kinds[i % len(kinds)] for i in range(len(poisoned))]
    for item in tagged:
        assert item.expected_reason == (EXPECTED_REASON[item.kind] if item.kind else None)
        assert item.expected_reason is None or item.expected_reason in REASON_CODES
        assert spec_reason(item.line) == item.expected_reason, item.line[:200]
        assert b"\n" not in item.line


def test_labelled_events_agree_with_the_plain_stream() -> None:
    labelled = list(generate_labelled_events(1000, 8, poison_rate=0.3))
    assert [line for line, _ in labelled] == list(generate_events(1000, 8, poison_rate=0.3))
    assert {reason for _, reason in labelled} == {None, *REASON_CODES} - {"too_large"}


def test_poison_replaces_lines_without_disturbing_the_others() -> None:
    clean = list(generate_events(1000, 12))
    tagged = list(generate_tagged_events(1000, 12, poison_rate=0.3))
    for before, after in zip(clean, tagged, strict=True):
        if after.kind is None:
            assert after.line == before


def test_too_large_only_when_allowed() -> None:
    tagged = list(generate_tagged_events(60, 1, poison_rate=1.0, allow_large=True))
    large = [t for t in tagged if t.kind == "too_large"]
    assert large
    assert all(len(t.line) > LARGE_PAYLOAD_BYTES for t in large)
    assert all(spec_reason(t.line) == "too_large" for t in large)
    small = generate_tagged_events(60, 1, poison_rate=1.0)
    assert all(t.kind != "too_large" for t in small)


def test_valid_lines_are_objects_with_all_features_and_unique_ids() -> None:
    tagged = list(generate_tagged_events(5000, 7, poison_rate=0.1))
    ids = []
    for item in tagged:
        if item.expected_reason is None:
            event = orjson.loads(item.line)
            assert isinstance(event, dict)
            assert set(FEATURES) <= event.keys()
            assert isinstance(event["ts"], int)
            ids.append(event["event_id"])
    assert len(ids) == len(set(ids)) > 4000
    assert ids[0].startswith("ev-7-")


def test_missing_source_values_are_null_not_absent() -> None:
    events = [orjson.loads(x) for x in generate_events(3000, 0)]
    assert any(e["sex"] is None for e in events)
    assert any(e["bill_length_mm"] is None for e in events)
    assert all(set(FEATURES) <= e.keys() for e in events)


def test_values_are_rounded_like_the_source() -> None:
    for line in generate_events(500, 0):
        event = orjson.loads(line)
        assert event["body_mass_g"] is None or isinstance(event["body_mass_g"], int)
        for feature in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm"):
            value = event[feature]
            assert value is None or round(value, 1) == value


def test_timestamps_are_evenly_spaced_from_the_start_time() -> None:
    start = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    stamps = [orjson.loads(x)["ts"] for x in generate_events(100, 0, start_time=start, rate=50.0)]
    start_ms = int(start.timestamp() * 1000)
    assert stamps == [start_ms + 20 * i for i in range(100)]


def test_with_species_adds_the_field() -> None:
    events = [orjson.loads(x) for x in generate_events(200, 0, with_species=True)]
    assert {e["species"] for e in events} == {"Adelie", "Chinstrap", "Gentoo"}
    assert all("species" not in orjson.loads(x) for x in generate_events(200, 0))
