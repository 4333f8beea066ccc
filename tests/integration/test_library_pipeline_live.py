"""A team's LightGBM + category_encoders pipeline served live, bit for bit, under --trust-package.

The team reads the penguins CSV with ``pd.read_csv`` (pandas gives the text columns
its Arrow-backed ``str`` dtype, held in the encoder's fitted mapping), fits a
category_encoders ``CountEncoder`` and a LightGBM classifier on that frame, and
builds a bundle. `run` on the real broker (which leaves pyarrow out of its
process) serves every row, sent as the JSON a producer writes; each record's
scores must equal ``predict_proba`` of the fitted pipeline on the team's frame.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from kafka_broker import TopicFactory
from worker_harness import SCORING_WORKER, Stream, Topics, WorkerProcess, produce_stream, stop_all
from worker_verify import read_predictions

from examples.custom_features.pipeline import CATEGORICAL, NUMERIC, PENGUINS_CSV
from model_bundles.build import build_bundle

EVERY_NTH_ROW = 2


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


@pytest.mark.timeout(600)
def test_lightgbm_and_category_encoders_served_live_equal_the_teams_predict_proba(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    import category_encoders
    from lightgbm import LGBMClassifier
    from sklearn.pipeline import Pipeline

    frame = pd.read_csv(PENGUINS_CSV)
    frame = frame[frame["species"].notna()].reset_index(drop=True)
    assert str(frame["island"].dtype) == "str"
    features = [*NUMERIC, *CATEGORICAL]
    pipeline = Pipeline(
        [("encode", category_encoders.CountEncoder(cols=CATEGORICAL)),
         ("model", LGBMClassifier(n_estimators=30, num_leaves=7, verbose=-1))]
    ).fit(frame[features], frame["species"])  # fmt: skip
    bundle = tmp_path / "bundle"
    manifest = build_bundle(
        pipeline, frame, bundle, name="penguins-lightgbm", version="1", target="species",
        numeric=NUMERIC, categorical=CATEGORICAL,
    )  # fmt: skip
    assert set(manifest.trust.packages) == {"category_encoders", "lightgbm"}
    trust = [f"--trust-package={name}" for name in sorted(manifest.trust.packages)]
    verify = [SCORING_WORKER, "bundle", "verify", str(bundle)]
    refused = subprocess.run(verify, capture_output=True, text=True)
    assert refused.returncode == 1 and "needs --trust-package" in refused.stderr
    verified = subprocess.run([*verify, *trust], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr

    team = frame.iloc[::EVERY_NTH_ROW]
    expected = pipeline.predict_proba(team[features])
    events = [
        {"event_id": str(i), **{c: _plain(v) for c, v in row.items()}}
        for i, row in zip(team.index, team[features].to_dict(orient="records"), strict=True)
    ]
    lines = [orjson.dumps(e) for e in events]
    topics = Topics(input=topic_factory(2), output=topic_factory(2), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, Stream(lines, [None] * len(lines), tmp_path / "ev"))
    worker = WorkerProcess(
        bootstrap, topics, tmp_path, "libraries", "--max-batch-events", "7",
        "--max-events", str(len(lines)), *trust, bundle=bundle,
    )  # fmt: skip
    try:
        assert worker.wait(300) == 0, worker.log_path.read_text()[-2000:]
    finally:
        stop_all([worker])

    labels = [str(c) for c in pipeline.classes_]
    row_of = {e["event_id"]: i for i, e in enumerate(events)}
    records = [orjson.loads(r.value or b"null") for r in read_predictions(
        bootstrap, topics.output, len(events)
    )]  # fmt: skip
    assert sorted(r["event_id"] for r in records) == sorted(row_of)
    for record in records:
        got = [record["scores"][label] for label in labels]
        assert got == expected[row_of[record["event_id"]]].tolist(), record["event_id"]
    print(f"\nFIGURE library pipeline live: {len(events)} events, LightGBM + category_encoders "
          "scores == the team's predict_proba bit for bit")  # fmt: skip
