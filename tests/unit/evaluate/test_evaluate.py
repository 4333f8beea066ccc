"""`evaluate`: figures against scikit-learn and scipy computed here, the gate, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from scipy.stats import bootstrap
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from tests.support.evaluate_data import (
    CLASSES,
    as_recording,
    classifier_lines,
    label_lines,
    labels_for,
    probabilities,
    regressor_lines,
    write,
)
from worker.cli.main import run_cli
from worker.evaluate.inputs import join, read_labels, read_predictions
from worker.evaluate.metrics import METRICS
from worker.evaluate.stats import evaluate

N = 400
IDS = [f"e{i:04d}" for i in range(N)]
Y = labels_for(N)
Y_TEXT = np.array([CLASSES[v] for v in Y], dtype=object)


def _files(tmp_path: Path, signals: dict[str, float]) -> tuple[Path, list[Path]]:
    labels = write(tmp_path / "labels.jsonl", label_lines(IDS, list(Y_TEXT)))
    predictions = [
        write(tmp_path / f"{name}.jsonl", classifier_lines(IDS, probabilities(Y, s, seed), name))
        for seed, (name, s) in enumerate(signals.items())
    ]
    return labels, predictions


def _evaluate(cli_args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(["evaluate", *cli_args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _args(labels: Path, predictions: list[Path], *extra: str) -> list[str]:
    args = ["--labels", str(labels), "--resamples", "200"]
    for p in predictions:
        args += ["--predictions", str(p)]
    return [*args, *extra]


def _sklearn(name: str, y: np.ndarray, p_yes: np.ndarray) -> float:
    pred = np.where(p_yes >= 0.5, "yes", "no")
    probs = np.column_stack([1 - p_yes, p_yes])
    return {
        "accuracy": lambda: accuracy_score(y, pred),
        "log_loss": lambda: log_loss(y, probs, labels=CLASSES),
        "brier": lambda: brier_score_loss(y, p_yes, pos_label="yes"),
        "roc_auc": lambda: roc_auc_score(y == "yes", p_yes),
    }[name]()


def test_figures_equal_sklearn_and_scipy_bootstrap(tmp_path: Path) -> None:
    labels, predictions = _files(tmp_path, {"champion": 0.8, "challenger": 1.6})
    models = [m for p in predictions for m in read_predictions(p.read_bytes().splitlines(), "p")]
    evaluation = evaluate(
        join(read_labels(labels.read_bytes().splitlines(), "l"), models), resamples=300, seed=5
    )
    p = [probabilities(Y, 0.8, 0), probabilities(Y, 1.6, 1)]
    for metric in METRICS["classification"]:
        if metric.needs_every_class:
            continue  # stratified resampling: tests/unit/evaluate/test_evaluate_rare.py

        def one(y: np.ndarray, q: np.ndarray, name: str = metric.name) -> float:
            return _sklearn(name, y, q)

        def diff(y: np.ndarray, a: np.ndarray, b: np.ndarray, name: str = metric.name) -> float:
            return _sklearn(name, y, b) - _sklearn(name, y, a)

        for k in range(2):
            estimate = evaluation.estimates[k][metric.name]
            assert estimate.value == pytest.approx(one(Y_TEXT, p[k]), rel=1e-12)
            ci = bootstrap(
                (Y_TEXT, p[k]),
                one,
                paired=True,
                vectorized=False,
                n_resamples=300,
                method="percentile",
                rng=np.random.default_rng(5),
            ).confidence_interval
            assert (estimate.low, estimate.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
        d = evaluation.differences[0][metric.name]
        res = bootstrap(
            (Y_TEXT, p[0], p[1]),
            diff,
            paired=True,
            vectorized=False,
            n_resamples=300,
            method="percentile",
            rng=np.random.default_rng(5),
        )
        assert d.value == pytest.approx(diff(Y_TEXT, p[0], p[1]), rel=1e-9)
        assert (d.low, d.high) == pytest.approx(
            (res.confidence_interval.low, res.confidence_interval.high), rel=1e-9
        )
        draws = res.bootstrap_distribution
        rarer = min(int((draws <= 0).sum()), int((draws >= 0).sum()))
        assert d.p_value == pytest.approx(min(1.0, 2 * (1 + rarer) / 301))


def test_regression_figures_equal_sklearn(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 2, N)
    a, b = y + rng.normal(0, 1, N), y + rng.normal(0.5, 1.5, N)
    labels = write(tmp_path / "l.jsonl", label_lines(IDS, y.tolist()))
    files = [
        write(tmp_path / "a.jsonl", regressor_lines(IDS, a, "a")),
        write(tmp_path / "b.jsonl", regressor_lines(IDS, b, "b")),
    ]
    models = [m for f in files for m in read_predictions(f.read_bytes().splitlines(), "p")]
    evaluation = evaluate(
        join(read_labels(labels.read_bytes().splitlines(), "l"), models), resamples=200
    )
    for k, pred in enumerate((a, b)):
        got = {n: e.value for n, e in evaluation.estimates[k].items()}
        want = {
            "mae": mean_absolute_error(y, pred),
            "rmse": root_mean_squared_error(y, pred),
            "r2": r2_score(y, pred),
        }
        assert got == pytest.approx(want, rel=1e-12)
    assert evaluation.differences[0]["rmse"].value > 0  # b is worse


def test_gate_better_model_passes_coin_flip_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels, (champion, better, coin, same) = _files(
        tmp_path, {"champion": 0.5, "better": 2.0, "coin": 0.0, "same": 0.5}
    )
    for metric in ("accuracy", "roc_auc", "log_loss"):
        code, _, err = _evaluate(
            _args(labels, [champion, better], "--require-better", metric), capsys
        )
        assert code == 0, err
    code, _, err = _evaluate(
        _args(labels, [champion, coin], "--require-better", "accuracy"), capsys
    )
    assert code == 1 and "not better on accuracy" in err and "coin" in err
    code, _, err = _evaluate(_args(labels, [champion, same], "--require-better", "roc_auc"), capsys)
    assert code == 1, "a challenger of the same quality is not better"
    code, _, err = _evaluate(
        _args(labels, [champion, better, coin], "--require-better", "accuracy"), capsys
    )
    assert code == 1 and "coin" in err and "better 1" not in err


def test_same_output_twice_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels, predictions = _files(tmp_path, {"a": 1.0, "b": 1.2})
    runs = []
    for n in range(2):
        report = tmp_path / f"r{n}.html"
        code, out, _ = _evaluate(_args(labels, predictions, "--report", str(report)), capsys)
        assert code == 0
        runs.append((out, report.read_bytes()))
    assert runs[0] == runs[1]
    assert b"<table" in runs[0][1] and runs[0][1].count(b"data:image/svg+xml;base64,") == 2
    code, out, _ = _evaluate(_args(labels, predictions, "--json", "--metric", "brier"), capsys)
    data = orjson.loads(out)
    assert code == 0 and data["events"] == N and list(data["models"][0]["metrics"]) == ["brier"]
    assert data["models"][1]["vs_first"]["brier"]["p_value"] is not None


def test_recordings_read_directly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A recording of a challenger topic holding two models, and of a labels topic."""
    p = [probabilities(Y, s, seed) for seed, s in enumerate((1.0, 1.5, 0.5))]
    champion = write(tmp_path / "champion.jsonl", classifier_lines(IDS, p[0], "lr"))
    both = classifier_lines(IDS, p[1], "hgb") + classifier_lines(IDS, p[2], "rf")
    challengers = write(tmp_path / "challengers.jsonl", as_recording(both, "challengers"))
    labels = write(
        tmp_path / "labels.jsonl", as_recording(label_lines(IDS, list(Y_TEXT)), "labels")
    )
    code, out, _ = _evaluate(_args(labels, [champion, challengers], "--json"), capsys)
    data = orjson.loads(out)
    assert code == 0 and [m["name"] for m in data["models"]] == ["lr", "hgb", "rf"]
    assert data["events"] == N


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels, (a, b) = _files(tmp_path, {"a": 1.0, "b": 1.2})
    extra = label_lines(["ghost-1", "ghost-2"], ["yes", "no"]) + label_lines([IDS[0]], ["maybe"])
    more = write(tmp_path / "more.jsonl", labels.read_bytes().splitlines() + extra)
    code, out, _ = _evaluate(_args(more, [a, b], "--json"), capsys)
    data = orjson.loads(out)["labels"]
    assert (
        code == 0
        and data["unknown_ids"] == 2
        and data["first_unknown_ids"] == ["ghost-1", "ghost-2"]
    )
    assert data["unseen_labels"] == {"maybe": 1} and data["relabelled"] == 1
    code, out, _ = _evaluate(_args(more, [a, b]), capsys)
    assert "labels for unknown event ids: 2 (first: ghost-1, ghost-2)" in out
    assert (
        'labels matching no class (left out of the metrics): 1 (maybe 1); e.g. e0000: "maybe"'
        in out
    )

    regression = write(tmp_path / "r.jsonl", regressor_lines(IDS, np.zeros(N), "r"))
    code, _, err = _evaluate(_args(labels, [a, regression]), capsys)
    assert code == 2 and err.count("\n") == 1 and "mixed tasks" in err
    twin = write(tmp_path / "twin.jsonl", a.read_bytes().splitlines())
    code, _, err = _evaluate(_args(labels, [a, twin]), capsys)
    assert code == 2 and "both hold predictions of bundle sha256:a" in err
    code, _, err = _evaluate(_args(labels, [a, b], "--require-better", "r2"), capsys)
    assert code == 2 and "not a classification metric" in err
    code, _, err = _evaluate(_args(labels, [a], "--require-better", "accuracy"), capsys)
    assert code == 2
