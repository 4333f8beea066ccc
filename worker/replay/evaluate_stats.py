"""`evaluate`'s figures: the task's metrics with 95 % intervals, and paired differences.

Metrics are scikit-learn's (``worker.replay.evaluate_metrics``).

Intervals and p-values come from one paired bootstrap (``scipy.stats.bootstrap``,
percentile method, ``n_resamples`` resamples drawn by ``numpy.random.Generator(seed)``):
each resample draws event positions with replacement, and every metric of every
model, and every challenger-minus-first difference, is computed on the same draw, so
the differences are paired (B. Efron and R. Tibshirani, *An Introduction to the
Bootstrap*, 1993, ch. 13 and 16; P. Koehn, "Statistical significance tests for
machine translation evaluation", EMNLP 2004, for paired bootstrap resampling of two
systems on one test set). The two-sided p-value of a difference inverts the
percentile interval: ``p = min(1, 2 (1 + #{d* <= 0 or >= 0, the rarer side}) / (B + 1))``
(Davison and Hinkley, *Bootstrap Methods and their Application*, 1997, eq. 4.11 for the
``+1``). A challenger is *better* on a metric when its difference goes the metric's
good way and ``p < 0.05``. Same inputs, seed and resamples: the same figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import bootstrap

from model_bundles.errors import BadInputError
from worker.replay.evaluate import Joined
from worker.replay.evaluate_metrics import Metric, Scorer, metrics_for
from worker.replay.id_hint import join_hint

CONFIDENCE = 0.95
ALPHA = 0.05
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0

BATCH = 50
"""Resamples drawn and scored at once (memory: BATCH x events positions)."""


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Difference:
    """Challenger minus first model, on the same events."""

    value: float
    low: float
    high: float
    p_value: float
    better: bool


@dataclass(slots=True)
class Evaluation:
    joined: Joined
    metrics: list[Metric]
    resamples: int
    seed: int
    estimates: list[dict[str, Estimate]]
    """Per model, by metric name."""
    differences: list[dict[str, Difference]]
    """Per challenger (models[1:]), by metric name."""


def evaluate(
    joined: Joined,
    metric_names: list[str] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Evaluation:
    """Point values on all joined events, intervals and p-values from the paired bootstrap."""
    n, k = len(joined.ids), len(joined.models)
    if n < 2:
        too_few = f"{n} labelled events predicted by every model: too few to evaluate"
        raise BadInputError(f"{too_few}; {join_hint(joined)}")  # issue 28: ids that differ
    metrics = metrics_for(joined.task, metric_names)
    point = _point(joined, metrics)
    result = bootstrap(
        (np.arange(n),),
        _statistic(joined, metrics),
        n_resamples=resamples,
        vectorized=True,
        batch=BATCH,
        method="percentile",
        confidence_level=CONFIDENCE,
        rng=np.random.default_rng(seed),
    )
    low = np.atleast_1d(result.confidence_interval.low)
    high = np.atleast_1d(result.confidence_interval.high)
    distribution = np.atleast_2d(result.bootstrap_distribution)
    estimates, differences = _assemble(k, metrics, point, low, high, distribution)
    return Evaluation(joined, metrics, resamples, seed, estimates, differences)


def _assemble(
    k: int,
    metrics: list[Metric],
    point: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    distribution: np.ndarray,
) -> tuple[list[dict[str, Estimate]], list[dict[str, Difference]]]:
    """Per-model estimates and per-challenger differences from the statistic vectors."""
    m = len(metrics)
    estimates = [
        {
            metric.name: Estimate(point[i * m + j], low[i * m + j], high[i * m + j])
            for j, metric in enumerate(metrics)
        }
        for i in range(k)
    ]
    differences = []
    for c in range(k - 1):
        row: dict[str, Difference] = {}
        for j, metric in enumerate(metrics):
            at = k * m + c * m + j
            row[metric.name] = _difference(metric, point[at], low[at], high[at], distribution[at])
        differences.append(row)
    return estimates, differences


def _point(joined: Joined, metrics: list[Metric]) -> np.ndarray:
    """Every metric of every model by scikit-learn, then every challenger-minus-first."""
    y, classes = joined.y, _codes(joined)
    table = np.array(
        [
            [_safe(m.compute, y, pred, scores, classes) for m in metrics]
            for pred, scores in zip(joined.predicted, joined.scores, strict=True)
        ]
    )
    return np.concatenate([table.ravel(), (table[1:] - table[0]).ravel()])


def _statistic(joined: Joined, metrics: list[Metric]) -> Callable[..., np.ndarray]:
    """positions (resamples, n) -> (statistics, resamples), in ``_point``'s order."""
    y, classes = joined.y, _codes(joined)
    each = [
        [m.per_event(y, pred, p, classes) if m.per_event else None for m in metrics]
        for pred, p in zip(joined.predicted, joined.scores, strict=True)
    ]

    def one(model: int, metric: Metric, losses: np.ndarray | None, idx: np.ndarray) -> np.ndarray:
        if losses is not None:
            means = np.asarray(losses[idx].mean(axis=-1), dtype=np.float64)
            return np.sqrt(means) if metric.root else means
        pred, p = joined.predicted[model], joined.scores[model]
        return np.array(
            [
                _safe(metric.compute, y[i], pred[i], None if p is None else p[i], classes)
                for i in idx
            ]
        )

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.atleast_2d(idx)
        table = np.array(
            [
                [one(k, m, losses, idx) for m, losses in zip(metrics, row, strict=True)]
                for k, row in enumerate(each)
            ]
        )  # (models, metrics, resamples)
        diffs = table[1:] - table[0]
        return np.concatenate([table.reshape(-1, idx.shape[0]), diffs.reshape(-1, idx.shape[0])])

    return statistic


def _codes(joined: Joined) -> list[Any]:
    """What the metrics get as ``classes``: the label positions ``joined.y`` holds."""
    return list(range(len(joined.classes)))


def _safe(compute: Scorer, *args: Any) -> float:
    """NaN when a resample leaves a metric undefined (ROC AUC with one label present)."""
    try:
        return compute(*args)
    except ValueError:
        return float("nan")


def _difference(
    metric: Metric, value: float, low: float, high: float, distribution: np.ndarray
) -> Difference:
    draws = distribution[~np.isnan(distribution)]
    b = len(draws)
    rarer = min(int(np.sum(draws <= 0)), int(np.sum(draws >= 0)))
    p_value = min(1.0, 2 * (1 + rarer) / (b + 1)) if b else float("nan")
    good_way = value > 0 if metric.higher_is_better else value < 0
    return Difference(value, low, high, p_value, bool(good_way and p_value < ALPHA))


def not_better(evaluation: Evaluation, metric_name: str) -> list[str]:
    """The challengers not better than the first model on ``metric_name`` (the gate)."""
    if metric_name not in {m.name for m in evaluation.metrics}:
        raise BadInputError(f"--require-better {metric_name}: not among the metrics evaluated")
    models = evaluation.joined.models[1:]
    return [
        model.label
        for model, row in zip(models, evaluation.differences, strict=True)
        if not row[metric_name].better
    ]
