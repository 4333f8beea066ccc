"""Frame types as fitted, served live (issue 25): the notebook's scores from the real broker.

A notebook reads its CSV with ``pd.read_csv`` (an integer-coded zone: int64; a
flag: bool; a timestamp parsed to datetime64), fits a one-hot encoder,
feature-engine's ``DatetimeFeatures`` and a logistic regression on that frame
as is, and builds. 1,000 rows written as JSON the way a producer writes them
(integers, booleans, ISO 8601 text in mixed forms) go through `run` on the
local broker; every record's scores equal the notebook's ``predict_proba``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from feature_engine.datetime import DatetimeFeatures
from kafka_broker import TopicFactory
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from worker_harness import Stream, Topics, WorkerProcess, produce_stream, stop_all
from worker_verify import read_predictions

from model_bundles.build import build_bundle

ROWS = 1000
FEATURES = ["zone", "flag", "at"]
FORMS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S+00:00")
"""One instant written three ways, as different producers do: all are UTC."""


def _notebook(tmp_path: Path) -> tuple[Pipeline, pd.DataFrame]:
    rng = np.random.default_rng(25)
    at = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 24 * 60, ROWS), unit="h")
    zone, flag = rng.integers(1, 6, ROWS), rng.random(ROWS) < 0.5
    label = np.where((zone >= 3) ^ flag ^ (at.hour < 6) ^ (rng.random(ROWS) < 0.1), "yes", "no")
    path = tmp_path / "train.csv"
    pd.DataFrame({"event_id": [f"e{i}" for i in range(ROWS)], "zone": zone, "flag": flag,
                  "at": at, "label": label}).to_csv(path, index=False)  # fmt: skip
    frame = pd.read_csv(path, parse_dates=["at"])
    assert [str(frame[c].dtype) for c in FEATURES] == ["int64", "bool", "datetime64[us]"]
    pipeline = Pipeline(
        [
            ("parts", DatetimeFeatures(variables=["at"], features_to_extract=["hour"])),
            (
                "encode",
                ColumnTransformer(
                    [
                        (
                            "onehot",
                            OneHotEncoder(handle_unknown="ignore"),
                            ["zone", "flag", "at_hour"],
                        )
                    ]
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(frame[FEATURES], frame["label"])
    return pipeline, frame


def _event(row: dict[str, Any], i: int) -> bytes:
    at = pd.Timestamp(row["at"]).strftime(FORMS[i % len(FORMS)])
    return orjson.dumps({"event_id": row["event_id"], "zone": int(row["zone"]),
                         "flag": bool(row["flag"]), "at": at})  # fmt: skip


@pytest.mark.timeout(600)
def test_read_csv_types_served_live_match_the_notebook(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    pipeline, frame = _notebook(tmp_path)
    bundle = tmp_path / "bundle"
    manifest = build_bundle(pipeline, frame, bundle, name="zones", version="1", target="label",
                            id_column="event_id")  # fmt: skip
    assert manifest.build["proved_rows"] == ROWS
    lines = [_event(row, i) for i, row in enumerate(frame.to_dict("records"))]
    topics = Topics(input=topic_factory(2), output=topic_factory(2), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, Stream(lines, [None] * ROWS, tmp_path / "events"))
    worker = WorkerProcess(
        bootstrap, topics, tmp_path, "frame-types", "--max-events", str(ROWS),
        "--trust-package", "feature_engine", bundle=bundle,
    )  # fmt: skip
    try:
        assert worker.wait(300) == 0, worker.log_path.read_text()[-2000:]
    finally:
        stop_all([worker])
    records = [orjson.loads(r.value or b"null") for r in read_predictions(
        bootstrap, topics.output, ROWS
    )]  # fmt: skip
    # the notebook's predict_proba in whole 64-row blocks, as the worker scores
    # (model_bundles.predict: a BLAS kernel's leftover rows may differ in the last bit)
    padded = frame[FEATURES].iloc[np.arange(ROWS + (-ROWS % 64)) % ROWS]
    notebook = pipeline.predict_proba(padded)[:ROWS]
    row_of = {event_id: i for i, event_id in enumerate(frame["event_id"])}
    labels = [str(c) for c in pipeline.classes_]
    equal = sum(
        [r["scores"][c] for c in labels] == notebook[row_of[r["event_id"]]].tolist()
        for r in records
    )
    assert (len(records), equal) == (ROWS, ROWS)  # before: the zone and flag never matched
    print(f"\nFIGURE frame types live: {equal} of {ROWS} served scores == the notebook's")
