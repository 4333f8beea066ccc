"""Metrics at the edges of the training data (issue 19, cases 2 and 3).

A bundle trained on categories named like every reserved bin label, and on two features
that are empty in training (numeric and categorical), scraped as Prometheus would.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from model_bundles.build import build_from_frame
from model_bundles.bundle import Bundle, load_bundle
from model_bundles.config import TrainingConfig
from model_bundles.reference import (
    RESERVED_BINS,
    UNKNOWN_BIN,
    CategoricalReference,
    EmptyFeatureWarning,
    bin_label,
)
from tests.support.promtext import value
from tests.support.scored import score_lines
from worker.cli.main import run_cli
from worker.monitoring.drift import EPSILON, DriftSettings
from worker.monitoring.metrics import WorkerMetrics

#: every reserved label as a category, the escaped forms too, and ordinary ones (the
#: empty text is a missing value in training data: ``bin_label`` alone is tested with it)
TAGS = ["__unknown__", "__empty__", "___unknown__", "____empty__", "_x", "plain"]
UNSEEN = ["never-seen", "__other__"]
CONFIG = {
    "bundle": {"name": "edges", "version": "1"},
    "data": {"target": "y"},
    "features": {"numeric": ["x", "empty_num"], "categorical": ["tag", "empty_cat"]},
    "model": {"estimator": "logistic_regression", "seed": 1},
}


def training_frame(rows: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(19)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "empty_num": np.nan,
            "tag": rng.choice(np.array(TAGS, dtype=object), size=rows),
            "empty_cat": None,
            "y": rng.choice(["a", "b"], size=rows),
        }
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, list[str], pd.DataFrame]:
    """The bundle, the EmptyFeatureWarning messages of its build, its training data."""
    out = tmp_path_factory.mktemp("bundles") / "edges"
    frame = training_frame()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_from_frame(TrainingConfig.model_validate(CONFIG), frame, out)
    messages = [str(w.message) for w in caught if w.category is EmptyFeatureWarning]
    return load_bundle(out), messages, frame


def live_lines(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    tags = rng.choice(np.array([*TAGS, *UNSEEN], dtype=object), size=n)
    return [
        orjson.dumps(
            {
                "x": float(rng.normal()),
                "empty_num": float(rng.normal()),
                "tag": str(t),
                "empty_cat": "filled",
            }
        )
        for t in tags
    ]


def scraped(bundle: Bundle, lines: list[bytes]) -> tuple[CollectorRegistry, str]:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, bundle, DriftSettings(window_events=100_000))
    metrics.batch_scored("events", len(lines), score_lines(bundle, lines), 0.01)
    return registry, generate_latest(registry).decode()


def samples_of(text: str, name: str, **where: str) -> list[dict[str, str | float]]:
    out: list[dict[str, str | float]] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in where.items()):
                out.append({**s.labels, "value": s.value})
    return out


# --- case 2: a category named like a reserved bin ----------------------------------------


def test_bin_labels_are_distinct_and_never_reserved() -> None:
    categories = [*TAGS, "", *RESERVED_BINS, "___", "__", "_"]
    labels = [bin_label(c) for c in categories]
    assert len(set(labels)) == len(set(categories))
    assert UNKNOWN_BIN not in labels
    assert not {bin_label(c) for c in categories if c} & set(RESERVED_BINS)
    assert "" not in labels  # an empty label value is no label at all in Prometheus


def test_categories_named_like_reserved_bins_get_their_own_series(
    built: tuple[Bundle, list[str], pd.DataFrame],
) -> None:
    bundle, _, _ = built
    lines = live_lines(3_000, seed=2)
    _, text = scraped(bundle, lines)
    list(parse_openmetrics(openmetrics_latest(CollectorRegistry()).decode()))  # parser works
    bins = samples_of(text, "scoring_feature_bin_total", feature="tag")
    ratios = samples_of(text, "scoring_feature_reference_ratio", feature="tag")
    for found in (bins, ratios):
        labels = [str(s["bin"]) for s in found]
        assert len(labels) == len(set(labels)) == len(TAGS) + 1
    live = Counter(orjson.loads(line)["tag"] for line in lines)
    reference = bundle.reference.features["tag"]
    assert isinstance(reference, CategoricalReference)
    training = dict(zip(reference.categories, reference.proportions, strict=False))
    by_label = {str(s["bin"]): s["value"] for s in bins}
    ratio_of = {str(s["bin"]): s["value"] for s in ratios}
    for tag in TAGS:
        assert by_label[bin_label(tag)] == live[tag], tag
        assert ratio_of[bin_label(tag)] == training[tag] > 0, tag
    assert by_label[UNKNOWN_BIN] == sum(live[t] for t in UNSEEN)
    assert ratio_of[UNKNOWN_BIN] == 0.0


def test_fleet_psi_from_the_page_equals_the_worker_gauge(
    built: tuple[Bundle, list[str], pd.DataFrame],
) -> None:
    """What the recording rule computes from the scraped series (one sample per label
    set, as Prometheus keeps) equals the worker's own PSI."""
    bundle, _, _ = built
    registry, text = scraped(bundle, live_lines(2_000, seed=4))
    list(parse_openmetrics(openmetrics_latest(registry).decode()))  # duplicates would raise
    counts = {
        s["bin"]: float(s["value"])
        for s in samples_of(text, "scoring_feature_bin_total", feature="tag")
    }
    refs = {
        s["bin"]: float(s["value"])
        for s in samples_of(text, "scoring_feature_reference_ratio", feature="tag")
    }
    total = sum(counts.values())
    fleet = 0.0
    for label, count in counts.items():
        p, r = max(count / total, EPSILON), max(refs.get(label, 0.0), EPSILON)
        fleet += (p - r) * math.log(p / r)
    gauge = value(registry, "scoring_feature_drift", feature="tag", statistic="psi")
    assert fleet == pytest.approx(gauge, abs=1e-9)


# --- case 3: a feature empty in training ---------------------------------------------------


def test_build_warns_about_features_without_training_values(
    built: tuple[Bundle, list[str], pd.DataFrame],
) -> None:
    _, messages, _ = built
    assert len(messages) == 2
    assert any("empty_num" in m and "NaN" in m for m in messages)
    assert any("empty_cat" in m and "NaN" in m for m in messages)


def test_drift_against_an_empty_training_feature_is_nan_and_its_missing_rate_exported(
    built: tuple[Bundle, list[str], pd.DataFrame],
) -> None:
    bundle, _, _ = built
    registry, _ = scraped(bundle, live_lines(500, seed=5))
    for feature in ("empty_num", "empty_cat"):
        for statistic in ("psi", "ks", "js"):
            got = value(registry, "scoring_feature_drift", feature=feature, statistic=statistic)
            assert math.isnan(got), (feature, statistic, got)
        assert value(registry, "scoring_feature_reference_missing_ratio", feature=feature) == 1.0
        assert value(registry, "scoring_feature_missing_ratio", feature=feature) == 0.0
    assert value(registry, "scoring_feature_reference_missing_ratio", feature="x") == 0.0
    assert not math.isnan(value(registry, "scoring_feature_drift", feature="x", statistic="psi"))


def test_bundle_build_command_prints_one_warning_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "train.csv"
    training_frame(200).to_csv(data, index=False)
    config = tmp_path / "config.toml"
    config.write_text(
        '[bundle]\nname = "edges"\nversion = "1"\n[data]\ntarget = "y"\n'
        '[features]\nnumeric = ["x", "empty_num"]\ncategorical = ["tag"]\n'
        '[model]\nestimator = "logistic_regression"\n'
    )
    args = ["bundle", "build", "--config", str(config), "--data", str(data)]
    assert run_cli([*args, "--out", str(tmp_path / "b")]) == 0
    lines = [
        x for x in capsys.readouterr().err.splitlines() if x.startswith("scoring-worker: warn")
    ]
    assert lines == [
        "scoring-worker: warning: feature empty_num has no value in the training data "
        "(100% missing): its drift will be NaN"
    ]
