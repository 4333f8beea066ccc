"""The worked example served live: feature-engine + the team's own module, trusted by option.

A pipeline of feature-engine imputers, the user's ``penguin_features`` module and
scikit-learn is built into a bundle (``examples/custom_features``), verified with
``--trust-package``/``--trust-code``, and served by `run` on the real broker at
batch sizes 1, 7 and 1000. Every record's scores equal the in-memory
``pipeline.predict_proba`` of the research session at batch sizes 1, 7 and 1000.
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

from examples.custom_features.pipeline import CATEGORICAL, NUMERIC, build, load_penguins
from examples.custom_features.pipeline import trust_options as options_for

BATCH_SIZES = (1, 7, 1000)
EVERY_NTH_ROW = 3
"""115 of the 344 penguins (all species): batch size 1 makes a transaction per event."""


def _events(frame: pd.DataFrame) -> list[dict[str, Any]]:
    events = []
    for row in frame.to_dict(orient="records"):
        event = {k: row[k] for k in ("event_id", *NUMERIC, *CATEGORICAL)}
        events.append({k: None if _missing(v) else v for k, v in event.items()})
    return events


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _in_memory(pipeline: Any, events: list[dict[str, Any]], size: int) -> np.ndarray[Any, Any]:
    frame = pd.DataFrame.from_records(events)[[*NUMERIC, *CATEGORICAL]]
    frame = frame.astype({n: "float64" for n in NUMERIC} | {c: object for c in CATEGORICAL})
    parts = [pipeline.predict_proba(frame.iloc[i : i + size]) for i in range(0, len(frame), size)]
    return np.concatenate(parts)


@pytest.mark.timeout(900)  # builds, verifies twice, and runs three workers: slow on a busy host
def test_feature_engine_and_user_code_served_live_match_in_memory_predict_proba(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    pipeline, manifest = build(bundle)
    trust = options_for(manifest)
    assert any(o.startswith("--trust-package=feature_engine") for o in trust)
    assert any(o.startswith("--trust-code=sha256:") for o in trust)
    verify = [SCORING_WORKER, "bundle", "verify", str(bundle)]
    refused = subprocess.run(verify, capture_output=True, text=True)
    assert refused.returncode == 1 and "needs --trust-code sha256:" in refused.stderr
    verified = subprocess.run([*verify, *trust], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr

    events = _events(load_penguins().iloc[::EVERY_NTH_ROW])
    lines = [orjson.dumps(e) for e in events]
    source = topic_factory(3)
    produce_stream(bootstrap, source, Stream(lines, [None] * len(lines), tmp_path / "events"))
    runs = {
        size: Topics(input=source, output=topic_factory(2), dlq=topic_factory(1))
        for size in BATCH_SIZES
    }
    workers = [
        WorkerProcess(
            bootstrap,
            topics,
            tmp_path,
            f"custom-{size}",
            "--max-batch-events",
            str(size),
            "--max-events",
            str(len(lines)),
            *trust,
            bundle=bundle,
        )
        for size, topics in runs.items()
    ]
    try:
        for worker in workers:
            assert worker.wait(300) == 0, worker.log_path.read_text()[-2000:]
    finally:
        stop_all(workers)

    # the bundle scores with n_jobs=1 (manifest.scoring_params): so does the research session
    assert manifest.scoring_params == {"model__n_jobs": {"fitted": 2, "scoring": 1}}
    pipeline.set_params(model__n_jobs=1)
    expected = {size: _in_memory(pipeline, events, size) for size in BATCH_SIZES}
    assert all(np.array_equal(expected[1], found) for found in expected.values())
    labels = [str(c) for c in pipeline.classes_]
    row_of = {e["event_id"]: i for i, e in enumerate(events)}
    for size, topics in runs.items():
        records = [orjson.loads(r.value or b"null") for r in read_predictions(
            bootstrap, topics.output, len(events)
        )]  # fmt: skip
        assert sorted(r["event_id"] for r in records) == sorted(row_of), f"batch size {size}"
        for record in records:
            want = expected[1][row_of[record["event_id"]]]
            got = [record["scores"][label] for label in labels]
            assert got == want.tolist(), f"batch size {size}: {record['event_id']}"
    print(f"\nFIGURE custom pipeline: {len(events)} events x {len(BATCH_SIZES)} batch sizes, "
          "live scores == in-memory predict_proba bit for bit")  # fmt: skip
