"""`evaluate` with rare positives: stratified resampling, undefined metrics, detectable effect.

Every figure is checked against scikit-learn's metrics and ``scipy.stats.bootstrap`` run
here on the same data, at 1 %, 10 % and 50 % positives.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from scipy.stats import bootstrap, norm
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from tests.support.evaluate_data import (
    integer_classifier_lines,
    label_lines,
    labels_with_positives,
    probabilities,
    write,
)
from worker.cli.main import run_cli
from worker.evaluate.inputs import join, read_labels, read_predictions
from worker.evaluate.stats import BATCH, Evaluation, evaluate

N = 400
IDS = [f"e{i:04d}" for i in range(N)]
SCORING_WORKER = str(Path(sys.executable).parent / "scoring-worker")
Z = norm.ppf(0.975) + norm.ppf(0.80)  # 2.80: 80 % power at the 5 % level, two-sided


def _sklearn(name: str, y: np.ndarray, p_one: np.ndarray) -> float:
    probs = np.column_stack([1 - p_one, p_one])
    return float(
        {
            "accuracy": lambda: accuracy_score(y, (p_one >= 0.5).astype(int)),
            "log_loss": lambda: log_loss(y, probs, labels=[0, 1]),
            "brier": lambda: brier_score_loss(y, p_one, pos_label=1),
            "roc_auc": lambda: roc_auc_score(y, p_one),
        }[name]()
    )


def _files(tmp_path: Path, y: np.ndarray, signals: tuple[float, ...]) -> tuple[Path, list[Path]]:
    labels = write(tmp_path / "labels.jsonl", label_lines(IDS[: len(y)], y.tolist()))
    predictions = [
        write(
            tmp_path / f"m{k}.jsonl",
            integer_classifier_lines(IDS[: len(y)], probabilities(y, s, k), f"m{k}"),
        )
        for k, s in enumerate(signals)
    ]
    return labels, predictions


def _reference(
    statistic: Callable[[np.ndarray], float], by_class: tuple[np.ndarray, ...] | None
) -> Any:
    """scipy on its own, one sklearn call per resample: ordinary paired resampling of the
    event positions, or (``by_class``) one sample of event positions per class, each
    resampled on its own. scipy draws per batch and per sample in order, so the batch
    size and class order are the worker's."""
    if by_class is not None:
        return bootstrap(
            by_class,
            lambda *per_class: statistic(np.concatenate(per_class)),
            paired=False,
            vectorized=False,
            n_resamples=120,
            batch=BATCH,
            method="percentile",
            rng=np.random.default_rng(5),
        )
    return bootstrap(
        (np.arange(N),),
        statistic,
        paired=True,
        vectorized=False,
        n_resamples=120,
        method="percentile",
        rng=np.random.default_rng(5),
    )


def _evaluation(labels: Path, predictions: list[Path], **kw: int) -> Evaluation:
    models = [m for p in predictions for m in read_predictions(p.read_bytes().splitlines(), "p")]
    joined = join(read_labels(labels.read_bytes().splitlines(), "l"), models)
    return evaluate(joined, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("positives", [4, 40, 200])  # 1 %, 10 %, 50 % of 400
def test_figures_equal_sklearn_and_scipy_bootstrap(tmp_path: Path, positives: int) -> None:
    y = labels_with_positives(N, positives)
    labels, predictions = _files(tmp_path, y, (0.8, 1.6))
    evaluation = _evaluation(labels, predictions, resamples=120, seed=5)
    p = [probabilities(y, 0.8, 0), probabilities(y, 1.6, 1)]
    by_class = (np.flatnonzero(y == 0), np.flatnonzero(y == 1))
    assert evaluation.methods == {
        "accuracy": "paired",
        "log_loss": "paired",
        "brier": "paired",
        "roc_auc": "stratified",
    }
    assert evaluation.undefined == {} and evaluation.warnings.total() == 0
    for name, method in evaluation.methods.items():
        stratified = method == "stratified"
        for k in range(2):
            estimate = evaluation.estimates[k][name]
            assert estimate.value == pytest.approx(_sklearn(name, y, p[k]), rel=1e-12)
            res = _reference(
                lambda i, k=k, name=name: _sklearn(name, y[i], p[k][i]),
                by_class if stratified else None,
            )
            ci = res.confidence_interval
            assert np.isfinite([estimate.low, estimate.high]).all()
            assert (estimate.low, estimate.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
        d = evaluation.differences[0][name]
        res = _reference(
            lambda i, name=name: _sklearn(name, y[i], p[1][i]) - _sklearn(name, y[i], p[0][i]),
            by_class if stratified else None,
        )
        assert d.value == pytest.approx(_sklearn(name, y, p[1]) - _sklearn(name, y, p[0]))
        ci = res.confidence_interval
        assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-9, abs=1e-12)
        draws = res.bootstrap_distribution
        rarer = min(int((draws <= 0).sum()), int((draws >= 0).sum()))
        assert d.p_value == pytest.approx(min(1.0, 2 * (1 + rarer) / 121))
        se = res.standard_error
        assert d.standard_error == pytest.approx(se, rel=1e-9)
        assert d.detectable == pytest.approx(2.801585 * se, rel=1e-6)
        assert d.detectable == pytest.approx(Z * se, rel=1e-12)


def test_rare_positives_finite_intervals_p_values_no_warnings(tmp_path: Path) -> None:
    """The issue's case: 400 labelled events, 4 positives, run as a user runs it."""
    labels, predictions = _files(tmp_path, labels_with_positives(N, 4), (0.8, 1.6))
    report = tmp_path / "r.html"
    args = [SCORING_WORKER, "evaluate", "--labels", str(labels), "--resamples", "100"]
    args += ["--predictions", str(predictions[0]), "--predictions", str(predictions[1])]
    done = subprocess.run([*args, "--json"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    data = orjson.loads(done.stdout)
    assert data["bootstrap"]["methods"]["roc_auc"] == "stratified"
    assert data["bootstrap"]["labels_per_class"] == {"0": 396, "1": 4}
    assert data["bootstrap"]["undefined"] == {} and data["warnings"]["count"] == 0
    for model in data["models"]:
        for figures in model["metrics"].values():
            assert None not in figures.values()
    for figures in data["models"][1]["vs_first"].values():
        assert None not in figures.values()
    done = subprocess.run([*args, "--report", str(report)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == f"report: {report}\n"
    assert "n/a" not in done.stdout
    assert "stratified: the events of each class drawn within that class" in done.stdout
    assert "labels per class: 0 396, 1 4" in done.stdout
    page = report.read_text()
    assert "stratified: the events of each class" in page and "detectable effect" in page


@pytest.mark.parametrize(
    ("positives", "why"),
    [
        (1, "the stratified bootstrap needs 2 or more labels of every class"),
        (0, "needs labels of every class"),
    ],
)
def test_metric_that_cannot_be_computed_has_no_p_value_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], positives: int, why: str
) -> None:
    labels, predictions = _files(tmp_path, labels_with_positives(N, positives), (0.8, 1.6))
    args = ["evaluate", "--labels", str(labels), "--resamples", "200"]
    args += ["--predictions", str(predictions[0]), "--predictions", str(predictions[1])]
    assert run_cli([*args, "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    auc = data["models"][1]["vs_first"]["roc_auc"]
    assert auc["p_value"] is None and auc["low"] is None and auc["better"] is False
    assert auc["detectable_effect"] is None
    counts = f"(labels per class: 0 {N - positives}, 1 {positives})"
    assert data["bootstrap"]["undefined"] == {"roc_auc": f"{why} {counts}"}
    assert data["models"][1]["vs_first"]["accuracy"]["p_value"] is not None  # the others stand

    assert run_cli([*args, "--require-better", "roc_auc"]) == 1
    out, err = capsys.readouterr()
    assert f"roc_auc: no interval and no p-value: {why} {counts}" in out
    assert "warning" not in err.lower() and "(no p-value: " in err


def test_library_warnings_counted_and_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No positive labels: the report's ROC curve warns (scikit-learn); one line says so."""
    labels, predictions = _files(tmp_path, labels_with_positives(N, 0), (0.8, 1.6))
    args = ["evaluate", "--labels", str(labels), "--resamples", "100"]
    args += ["--predictions", str(predictions[0]), "--predictions", str(predictions[1])]
    with warnings.catch_warnings(record=True) as caught:  # none may escape to be printed
        warnings.simplefilter("always")
        assert run_cli([*args, "--report", str(tmp_path / "r.html")]) == 0
    assert [str(w.message) for w in caught] == []
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("library warnings caught")]
    assert len(lines) == 1 and "UndefinedMetricWarning" in lines[0]
    assert err == f"report: {tmp_path / 'r.html'}\n"


def test_detectable_effect_halves_with_four_times_the_labels(tmp_path: Path) -> None:
    """MDE ~ 1/sqrt(n): the line tells 'not better' from 'not enough labels'."""
    effects = []
    for n in (200, 800):
        y = labels_with_positives(n, n // 2, seed=n)
        ids = [f"e{i}" for i in range(n)]
        labels = write(tmp_path / f"l{n}.jsonl", label_lines(ids, y.tolist()))
        files = [
            write(tmp_path / f"{n}-{k}.jsonl", integer_classifier_lines(ids, p, f"m{k}"))
            for k, p in enumerate((probabilities(y, 1.0, n), probabilities(y, 1.0, n + 1)))
        ]
        evaluation = _evaluation(labels, files, resamples=400)
        effects.append(evaluation.differences[0]["log_loss"].detectable)
    assert 0.35 < effects[1] / effects[0] < 0.65


def test_gate_says_when_the_labels_are_too_few_to_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two models of equal quality on 100 labels: not better, and within the MDE."""
    y = labels_with_positives(100, 50)
    labels, predictions = _files(tmp_path, y, (1.0, 1.0))
    args = ["evaluate", "--labels", str(labels), "--resamples", "200", "--metric", "accuracy"]
    args += ["--predictions", str(predictions[0]), "--predictions", str(predictions[1])]
    assert run_cli([*args, "--require-better", "accuracy"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gate: not better on accuracy: m1 1 m1 (") and err.count("\n") == 1
    assert "within the detectable effect ±0." in err and "too few labels to tell" in err
