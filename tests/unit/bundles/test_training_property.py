"""Property: a table's values mean the same in CSV, in Parquet and in events.

Hypothesis draws tables of categorical columns (text that looks like numbers,
leading zeros, "NA"/"null"/"None", "True", unicode, commas and quotes; integer
columns with blanks; boolean columns), writes each as CSV and as Parquet and
builds a bundle from both. Both give the same categories, data fingerprint and
fitted model; every training value, sent as an event (as a JSON string, and as
a JSON integer or boolean where the column held those), hits its own category,
and every row scores exactly as the config's pipeline fitted in memory on the
table's values does.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_bundles.build import build_from_config
from model_bundles.bundle import Bundle, load_bundle
from model_bundles.values import category_text
from tests.support.training_tables import fit_in_memory, score_in_memory, text_column, write_config
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer

TEXTS = ["NA", "null", "None", "N/A", "nan", "007", "7", "0", "-3", "1.5", "1.0", "True",
         "true", "ü", "日本語", " x", "a,b", 'say "hi"']  # fmt: skip
KINDS: dict[str, tuple[st.SearchStrategy[Any], pa.DataType]] = {
    "text": (st.sampled_from(TEXTS), pa.string()),
    "int": (st.integers(-5, 12), pa.int64()),
    "bool": (st.booleans(), pa.bool_()),
}
CATEGORICAL = ("c1", "c2")
Table = dict[str, tuple[str, list[Any]]]


@st.composite
def tables(draw: st.DrawFn) -> Table:
    rows = draw(st.integers(12, 28))
    table: Table = {}
    for name in CATEGORICAL:
        kind = draw(st.sampled_from(sorted(KINDS)))
        value = KINDS[kind][0]
        # every other value present, so no split leaves a column without any in training
        maybe = st.one_of(st.none(), value, value)
        table[name] = (kind, [draw(maybe if i % 2 else value) for i in range(rows)])
    return table


def _write(table: Table, folder: Path) -> tuple[Path, Path, pd.DataFrame]:
    rows = len(table[CATEGORICAL[0]][1])
    x = [float(i) * 0.5 for i in range(rows)]
    y = ["yes" if i % 2 else "no" for i in range(rows)]
    csv_path, parquet_path = folder / "data.csv", folder / "data.parquet"
    with csv_path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["x", *CATEGORICAL, "y"])
        texts = [[category_text(v) or "" for v in table[c][1]] for c in CATEGORICAL]
        writer.writerows(zip([repr(v) for v in x], *texts, y, strict=True))
    arrays = {c: pa.array(table[c][1], KINDS[table[c][0]][1]) for c in CATEGORICAL}
    pq.write_table(pa.table({"x": x, **arrays, "y": y}), parquet_path)
    expected = pd.DataFrame(
        {"x": x, **{c: text_column([category_text(v) for v in table[c][1]]) for c in CATEGORICAL}}
    )
    expected["y"] = y
    return csv_path, parquet_path, expected


def _events(table: Table, typed: bool) -> list[InputEvent]:
    rows = len(table[CATEGORICAL[0]][1])
    events = []
    for i in range(rows):
        event: dict[str, Any] = {"x": float(i) * 0.5}
        for name in CATEGORICAL:
            kind, values = table[name]
            event[name] = values[i] if typed and kind != "text" else category_text(values[i])
        events.append(InputEvent(orjson.dumps(event), offset=i))
    return events


def _build(config: Path, data: Path) -> Bundle:
    out = data.with_suffix(".bundle")
    build_from_config(config, data, out)
    return load_bundle(out)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_csv_parquet_and_events_give_every_value_its_own_category(table: Table) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        csv_path, parquet_path, expected = _write(table, folder)
        config = write_config(folder / "c.toml", target="y", numeric=["x"], categorical=CATEGORICAL)
        from_csv, from_parquet = _build(config, csv_path), _build(config, parquet_path)
        reference = score_in_memory(fit_in_memory(expected, config), expected, config).scores
    a, b = from_csv.manifest, from_parquet.manifest
    assert a.features == b.features and a.data.sha256 == b.data.sha256
    assert a.files["model.skops"] == b.files["model.skops"]  # the same fitted model
    for spec in a.features[1:]:
        texts = {category_text(v) for v in table[spec.name][1]} - {None}
        assert spec.categories == sorted(texts)  # type: ignore[type-var]
    assert reference is not None
    for bundle in (from_csv, from_parquet):
        for typed in (False, True):
            scored = BatchScorer(bundle).score(_events(table, typed))
            assert scored.rejected == [] and scored.unknown_categories == {}
            for name in CATEGORICAL:
                assert scored.frame[name].tolist() == expected[name].tolist()
            assert scored.outputs.scores is not None
            assert np.array_equal(scored.outputs.scores, reference)
            assert scored.outputs.scores.tobytes() == reference.tobytes()
