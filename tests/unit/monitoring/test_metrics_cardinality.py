"""Metric series bounded whatever the training data (issue 28, item 5).

A categorical feature with 26,000 training values (merchant ids) used to give 52,000
series and 3.8 MB per scrape; one with 2,432 zip codes gave a PSI of 0.21 on the
training rows themselves (sparse bins), next to the 0.25 alert. Now at most
``MAX_CATEGORY_BINS`` categories keep their bin, the rest share ``__other__``, the
build warns naming the feature, and undrifted data reads a PSI near 0.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from model_bundles.build import build_from_frame
from model_bundles.bundle import Bundle, load_bundle
from model_bundles.config import TrainingConfig
from model_bundles.events import normalize_frame
from model_bundles.reference import (
    MAX_CATEGORY_BINS,
    OTHER_BIN,
    UNKNOWN_BIN,
    ManyCategoriesWarning,
    categorical_reference,
    feature_references,
)
from tests.support.scored import score_lines
from worker.cli.main import run_cli
from worker.monitoring.drift import DriftSettings
from worker.monitoring.metrics import WorkerMetrics

WINDOW = 10_000


def config(feature: str) -> dict[str, object]:
    return {
        "bundle": {"name": f"many-{feature}", "version": "1"},
        "data": {"target": "y"},
        "features": {"numeric": ["amount"], "categorical": [feature]},
        "model": {"estimator": "logistic_regression", "seed": 1},
    }


def training_frame(feature: str, categories: int, rows: int, seed: int) -> pd.DataFrame:
    """Every category at least once, the rest with weights 1/sqrt(rank): a long tail."""
    rng = np.random.default_rng(seed)
    names = np.array([f"{feature}-{i:05d}" for i in range(categories)], dtype=object)
    weights = 1.0 / np.sqrt(np.arange(1, categories + 1))
    drawn = rng.choice(names, size=rows - categories, p=weights / weights.sum())
    values = rng.permutation(np.concatenate([names, drawn]))
    return pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 30.0, size=rows),
            feature: values,
            "y": rng.choice(["ok", "fraud"], size=rows, p=[0.9, 0.1]),
        }
    )


def build(tmp_path: Path, feature: str, frame: pd.DataFrame) -> tuple[Bundle, list[str]]:
    """The bundle of ``frame`` and its ManyCategoriesWarning messages.

    The pipeline is fitted on the first 600 rows (the dense one-hot encoder of the
    catalogue's pipelines would need 5 GB for 26,000 categories); the manifest's
    categories and the reference are those of every row, made by the functions the
    build uses, so the metrics see what a bundle trained on all of it holds. The
    encoder ignores the categories it was not fitted on, as it does unknown ones.
    """
    small = frame.head(600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManyCategoriesWarning)
        build_from_frame(TrainingConfig.model_validate(config(feature)), small, tmp_path / feature)
    fitted = load_bundle(tmp_path / feature)
    specs = [
        spec.model_copy(update={"categories": sorted(frame[spec.name].unique().tolist())})
        if spec.kind == "categorical"
        else spec
        for spec in fitted.manifest.features
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = feature_references(normalize_frame(frame, specs), specs)
    messages = [str(w.message) for w in caught if w.category is ManyCategoriesWarning]
    bundle = dataclasses.replace(
        fitted,
        manifest=fitted.manifest.model_copy(update={"features": specs}),
        reference=fitted.reference.model_copy(update={"features": features}),
    )
    return bundle, messages


def rows_as_lines(frame: pd.DataFrame, feature: str) -> list[bytes]:
    return [
        orjson.dumps({"event_id": f"e{i}", "amount": float(a), feature: str(v)})
        for i, (a, v) in enumerate(zip(frame["amount"], frame[feature], strict=True))
    ]


def scrape(bundle: Bundle, lines: list[bytes]) -> tuple[WorkerMetrics, str]:
    metrics = WorkerMetrics(CollectorRegistry(), bundle, DriftSettings(window_events=WINDOW))
    metrics.batch_scored("events", len(lines), score_lines(bundle, lines), 0.01)
    return metrics, generate_latest(metrics.registry).decode()


def series(text: str, **where: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (s.name, s.labels)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if all(s.labels.get(k) == v for k, v in where.items())
    ]


@pytest.fixture(scope="module")
def merchants(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, list[str], pd.DataFrame]:
    frame = training_frame("merchant_id", 26_000, 40_000, seed=28)
    bundle, messages = build(tmp_path_factory.mktemp("b"), "merchant_id", frame)
    return bundle, messages, frame


def test_26000_merchant_ids_give_a_bounded_scrape(
    merchants: tuple[Bundle, list[str], pd.DataFrame],
) -> None:
    bundle, messages, frame = merchants
    assert len(bundle.manifest.features[1].categories or ()) == 26_000  # the model has all
    assert len(messages) == 1
    assert "feature merchant_id has 26,000 training categories" in messages[0]
    assert f"the other {26_000 - MAX_CATEGORY_BINS:,} share the {OTHER_BIN} bin" in messages[0]
    _, text = scrape(bundle, rows_as_lines(frame.head(2_000), "merchant_id"))
    per_feature = series(text, feature="merchant_id")
    print(f"\nFIGURE merchant_id: {len(per_feature)} series, scrape {len(text):,} bytes")
    # bins: 20 categories, __other__, __unknown__; a count per bin, a reference ratio per
    # bin, the missing count, and the feature's own gauges (drift, missing, unknown)
    assert len(per_feature) <= 2 * (MAX_CATEGORY_BINS + 2) + 12
    assert len(series(text)) < 500 and len(text) < 100_000
    bins = {labels["bin"] for _, labels in per_feature if "bin" in labels}
    assert {OTHER_BIN, UNKNOWN_BIN} <= bins and len(bins) <= MAX_CATEGORY_BINS + 3


def test_2432_zip_codes_read_no_drift_on_the_training_rows(tmp_path: Path) -> None:
    frame = training_frame("zip", 2_432, 30_000, seed=5)
    bundle, messages = build(tmp_path, "zip", frame)
    assert [m.split(":")[0] for m in messages] == ["feature zip has 2,432 training categories"]
    for start in (0, WINDOW, 2 * WINDOW):  # three undrifted windows of training rows
        metrics, _ = scrape(bundle, rows_as_lines(frame.iloc[start : start + WINDOW], "zip"))
        psi = metrics.drift().features["zip"].psi
        print(f"\nFIGURE zip codes: PSI {psi:.4f} on training rows {start}-{start + WINDOW}")
        assert psi < 0.01


def test_drift_of_a_merged_category_shows_in_the_other_bin(tmp_path: Path) -> None:
    """Merging keeps drift visible: live values moving to the long tail raise PSI."""
    frame = training_frame("zip", 2_432, 30_000, seed=5)
    bundle, _ = build(tmp_path, "zip", frame)
    reference = bundle.reference.features["zip"]
    tail = list(getattr(reference, "other", None) or ())[:500]
    live = frame.head(WINDOW).copy()
    live["zip"] = np.resize(np.array(tail, dtype=object), WINDOW)  # all from the merged tail
    metrics, _ = scrape(bundle, rows_as_lines(live, "zip"))
    assert metrics.drift().features["zip"].psi > 0.25


def test_the_cap_keeps_the_most_frequent_and_a_small_feature_unchanged() -> None:
    few = categorical_reference(["a", "b", "b", None], ["a", "b", "c"])
    assert few.other is None and few.bin_labels() == ["a", "b", "c", UNKNOWN_BIN]
    names = [f"c{i:02d}" for i in range(30)]
    values = [n for i, n in enumerate(names) for _ in range(30 - i)]  # c00 most frequent
    capped = categorical_reference([*values, "unseen"], names, max_bins=5)
    assert capped.categories == names[:5]
    assert capped.other == names[5:]
    assert capped.bin_labels() == [*names[:5], OTHER_BIN, UNKNOWN_BIN]
    assert sum(capped.proportions) == pytest.approx(1.0)
    assert capped.proportions[-1] == pytest.approx(1 / (len(values) + 1))


def test_build_prints_one_warning_line_naming_the_feature(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data.csv"
    training_frame("shop", 60, 600, seed=3).to_csv(data, index=False)
    toml = tmp_path / "config.toml"
    toml.write_text(
        '[bundle]\nname = "shops"\nversion = "1"\n[data]\ntarget = "y"\n'
        '[features]\nnumeric = ["amount"]\ncategorical = ["shop"]\n'
        '[model]\nestimator = "logistic_regression"\n'
    )
    args = ["bundle", "build", "--config", str(toml), "--data", str(data)]
    assert run_cli([*args, "--out", str(tmp_path / "b")]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if "warning" in x]
    assert len(lines) == 1
    assert lines[0].startswith("scoring-worker: warning: feature shop has 60 training categories")
