"""The scoring core on a pipeline fitted on a frame of fitted dtypes (``pd.read_csv``'s
int64 and bool columns, nullable Int64 and boolean, str and string): CPU per event of
``BatchScorer.score`` through the JSON struct decoder (``worker.core.json_columns``) and
through the general path (orjson, ``check_batch``), in process, best of N, on the same
5,000 events. The records of both are checked equal first.

    .venv/bin/python -m bench.typed
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from model_bundles.build import build_bundle
from model_bundles.bundle import Bundle, load_bundle
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer

NUMERIC = ["count", "small", "maybe"]
CATEGORICAL = ["flag", "ok", "code", "name"]


def typed_bundle(directory: Path) -> Bundle:
    """A logistic regression fitted on int64, uint8, Int64, bool, boolean, str, string."""
    rng = np.random.default_rng(33)
    n = 240
    frame = pd.DataFrame(
        {
            "count": rng.integers(0, 9, n),
            "small": pd.Series(rng.integers(0, 200, n), dtype="uint8"),
            "maybe": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "flag": rng.random(n) < 0.5,
            "ok": pd.array(rng.random(n) < 0.3, dtype="boolean"),
            "code": pd.Series(rng.choice(["01", "2", "x"], n), dtype="str"),
            "name": pd.Series(rng.choice(["a", "b"], n), dtype="string"),
        }
    )
    frame.loc[::7, "maybe"] = pd.NA
    frame["label"] = np.where(frame["flag"] ^ (frame["count"] > 4), "a", "b")
    encode = ColumnTransformer(
        [
            ("numbers", SimpleImputer(), NUMERIC),
            ("onehot", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    pipeline = Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])
    pipeline.fit(frame[NUMERIC + CATEGORICAL], frame["label"])
    build_bundle(pipeline, frame, directory, name="typed", version="1", target="label",
                 numeric=NUMERIC, categorical=CATEGORICAL)  # fmt: skip
    return load_bundle(directory)


def typed_events(count: int) -> list[InputEvent]:
    values = [
        orjson.dumps({"count": i % 9, "small": i % 200, "maybe": None if i % 3 else i % 5,
                      "flag": i % 2 == 1, "ok": i % 5 == 0, "code": ("01", "2", "x")[i % 3],
                      "name": "ab"[i % 2], "event_id": f"e{i}"})
        for i in range(count)
    ]  # fmt: skip
    return [InputEvent(v, None, "events", 0, i, 1_000 + i) for i, v in enumerate(values)]


def _cpu_us(work: Callable[[], object], events: int, tries: int) -> float:
    best = float("inf")
    for _ in range(tries):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best / events * 1e6


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.typed", description=__doc__)
    p.add_argument("--events", type=int, default=5_000)
    p.add_argument("--tries", type=int, default=15)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-typed-") as tmp:
        bundle = typed_bundle(Path(tmp) / "typed")
        events = typed_events(args.events)
        fast, general = BatchScorer(bundle), BatchScorer(bundle)
        general._columns = None  # the general path only
        assert fast._columns is not None, "the struct decoder reads these fitted dtypes"
        assert fast.score(events).records == general.score(events).records
        for _ in range(2):  # interleaved
            slow = _cpu_us(lambda: general.score(events), len(events), args.tries)
            quick = _cpu_us(lambda: fast.score(events), len(events), args.tries)
            print(f"scoring core, fitted dtypes, batch {len(events):,}: general path "
                  f"{slow:.2f} µs/event, struct decoder {quick:.2f} µs/event "
                  f"({quick / slow:.0%})")  # fmt: skip


if __name__ == "__main__":
    main()
