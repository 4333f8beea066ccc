"""`evaluate`'s figures: the task's metrics with 95 % intervals, and paired differences.

Metrics are scikit-learn's (``worker.evaluate.metrics``).

Intervals and p-values come from a paired bootstrap (``scipy.stats.bootstrap``,
percentile method, ``n_resamples`` resamples drawn by ``numpy.random.Generator(seed)``):
each resample draws event positions with replacement, and every metric of every
model, and every challenger-minus-first difference, is computed on the same draw, so
the differences are paired (B. Efron and R. Tibshirani, *An Introduction to the
Bootstrap*, 1993, ch. 13 and 16; P. Koehn, "Statistical significance tests for
machine translation evaluation", EMNLP 2004, for paired bootstrap resampling of two
systems on one test set).

Two resampling methods, named per metric in the output:

- ``paired``: the joined events drawn with replacement, all together. For metrics
  defined on any sample (accuracy, log loss, Brier score; MAE, RMSE, R²).
- ``stratified``: the events of each class drawn with replacement within that class
  (the class counts of every resample are the joined ones), still the same draw for
  every model. For metrics that need every class in the sample (ROC AUC): with 4
  positives in 400 events, about 2 % of ordinary resamples hold none and the
  interval would be undefined. ``scipy.stats.bootstrap`` does it when given one sample
  of event positions per class, ``paired=False``: each sample is resampled on its own
  (Davison and Hinkley, *Bootstrap Methods and their Application*, 1997, sec. 3.2.2,
  stratified resampling; the stratified bootstrap of the ROC AUC is pROC's default,
  Robin et al., BMC Bioinformatics 12:77, 2011). It needs 2 or more labels of each
  class; with fewer, that metric gets no interval and no p-value, and a reason.

The two-sided p-value of a difference inverts the percentile interval:
``p = min(1, 2 (1 + #{d* <= 0 or >= 0, the rarer side}) / (B + 1))`` (Davison and
Hinkley 1997, eq. 4.11 for the ``+1``); when any resample leaves the metric
undefined there is no interval and no p-value (``Evaluation.undefined`` says why). A
challenger is *better* on a metric when its difference goes the metric's good way
and ``p < 0.05``. Same inputs, seed and resamples: the same figures.

The minimum detectable effect of a difference is
``(z_{1 - alpha/2} + z_{power}) * SE``, SE the standard deviation of its bootstrap
distribution: the smallest true difference a two-sided test at level ``alpha``
detects with probability ``power`` (2.80 SE for 80 % at 0.05). H. S. Bloom, "Minimum
detectable effects: a simple way to report the statistical power of experimental
designs", *Evaluation Review* 19(5), 1995, eq. 1 (normal approximation); J. Cohen,
*Statistical Power Analysis for the Behavioral Sciences*, 2nd ed., 1988, ch. 2.

Library warnings raised while computing (scikit-learn's ``UndefinedMetricWarning``...)
are caught and counted in ``Evaluation.warnings``, never printed one by one.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from scipy.stats import bootstrap, norm

from schemas.errors import BadInputError
from worker.evaluate.inputs import Joined, join_hint
from worker.evaluate.metrics import Metric, Scorer, metrics_for

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.80
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
PAIRED = "paired"
STRATIFIED = "stratified"

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
    standard_error: float = float("nan")
    """Standard deviation of the difference's bootstrap distribution."""
    detectable: float = float("nan")
    """Minimum detectable effect: ``(z_{1-alpha/2} + z_power) * standard_error``."""


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
    methods: dict[str, str] = field(default_factory=dict)
    """Metric name -> resampling method, ``paired`` or ``stratified``."""
    undefined: dict[str, str] = field(default_factory=dict)
    """Metric name -> why it has no interval and no p-value."""
    warnings: Counter[str] = field(default_factory=Counter)
    """Library warnings caught while computing, by ``Category: message``."""
    power: float = POWER
    alpha: float = ALPHA


@dataclass(frozen=True, slots=True)
class _Draws:
    """One metric's bootstrap figures, rows: models then challenger-minus-first."""

    low: np.ndarray
    high: np.ndarray
    distribution: np.ndarray


def evaluate(
    joined: Joined,
    metric_names: list[str] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Evaluation:
    """Point values on all joined events, intervals and p-values from the paired bootstrap.

    BadInputError when fewer than 2 events joined (naming labels that match no class) or
    a metric name the task lacks. Warnings are counted in the result, not emitted.
    """
    n = len(joined.ids)
    if n < 2:
        raise BadInputError(too_few(joined))
    metrics = metrics_for(joined.task, metric_names)
    caught: Counter[str] = Counter()
    with counting_warnings(caught):
        point = {m.name: _point(joined, m) for m in metrics}
        methods = {m.name: STRATIFIED if m.needs_every_class else PAIRED for m in metrics}
        undefined = {
            m.name: _cannot_compute(joined, m) for m in metrics if np.isnan(point[m.name]).any()
        }
        draws: dict[str, _Draws] = {}
        for method in (PAIRED, STRATIFIED):
            group = [m for m in metrics if methods[m.name] == method and m.name not in undefined]
            why = _too_few_per_class(joined) if method == STRATIFIED and group else None
            if why is not None:
                undefined.update((m.name, why) for m in group)
            elif group:
                draws.update(_bootstrap(joined, group, method, resamples, seed))
        for name, d in draws.items():
            failed = int(np.isnan(d.distribution).any(axis=0).sum())
            if failed:
                undefined[name] = f"undefined on {failed} of {resamples} resamples"
    estimates, differences = _assemble(joined, metrics, point, draws, undefined)
    return Evaluation(
        joined, metrics, resamples, seed, estimates, differences, methods, undefined, caught
    )


@contextmanager
def counting_warnings(counter: Counter[str]) -> Iterator[None]:
    """Catch every warning raised inside; count it in ``counter`` by category and message."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            counter.update(
                f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}" for w in caught
            )


def too_few(joined: Joined) -> str:
    """Why there is nothing to evaluate, naming labels that match no class."""
    line = f"{len(joined.ids)} labelled events predicted by every model: too few to evaluate"
    matching, unmatched = joined.matching, sum(joined.unseen_labels.values())
    if matching is None or not unmatched:
        hint = join_hint(joined)  # ids that differ or repeat (issue 28)
        return f"{line}; {hint}" if hint else line
    example = ""
    if matching.unmatched_examples:
        event_id, label = matching.unmatched_examples[0]
        example = f"; e.g. event {event_id} label {_json(label)}"
    return (
        f"{line}: {unmatched} labels match no class of the models "
        f"({matching.kind} classes {', '.join(joined.classes)}){example}"
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def class_counts_text(joined: Joined) -> str:
    """``labels per class: no 396, yes 4`` (classification)."""
    counts = joined.class_counts()
    return "labels per class: " + ", ".join(f"{c} {k}" for c, k in counts.items())


def _cannot_compute(joined: Joined, metric: Metric) -> str:
    if metric.needs_every_class and min(joined.class_counts().values(), default=0) == 0:
        return f"needs labels of every class ({class_counts_text(joined)})"
    counts = f" ({class_counts_text(joined)})" if joined.task == "classification" else ""
    return f"cannot be computed on these labels{counts}"


def _too_few_per_class(joined: Joined) -> str | None:
    counts = joined.class_counts()
    if min(counts.values()) >= 2:
        return None
    return (
        "the stratified bootstrap needs 2 or more labels of every class "
        f"({class_counts_text(joined)})"
    )


def _bootstrap(
    joined: Joined, metrics: list[Metric], method: str, resamples: int, seed: int
) -> dict[str, _Draws]:
    """scipy's percentile bootstrap of ``metrics``; the draws depend only on events and seed."""
    statistic = _statistic(joined, metrics)
    if method == STRATIFIED:
        data = tuple(np.flatnonzero(joined.y == c) for c in range(len(joined.classes)))
        paired = False

        def each(*per_class: np.ndarray, axis: int = -1) -> np.ndarray:
            return statistic(np.concatenate([np.atleast_2d(s) for s in per_class], axis=-1))

    else:
        data, paired, each = (np.arange(len(joined.ids)),), True, statistic
    result = bootstrap(
        data,
        each,
        n_resamples=resamples,
        vectorized=True,
        paired=paired,
        batch=BATCH,
        method="percentile",
        confidence_level=CONFIDENCE,
        rng=np.random.default_rng(seed),
    )
    low = np.atleast_1d(result.confidence_interval.low)
    high = np.atleast_1d(result.confidence_interval.high)
    distribution = np.atleast_2d(result.bootstrap_distribution)
    k, m = len(joined.models), len(metrics)
    out = {}
    for j, metric in enumerate(metrics):
        rows = [i * m + j for i in range(k)] + [k * m + c * m + j for c in range(k - 1)]
        out[metric.name] = _Draws(low[rows], high[rows], distribution[rows])
    return out


def _assemble(
    joined: Joined,
    metrics: list[Metric],
    point: dict[str, np.ndarray],
    draws: dict[str, _Draws],
    undefined: dict[str, str],
) -> tuple[list[dict[str, Estimate]], list[dict[str, Difference]]]:
    """Per-model estimates and per-challenger differences; NaN where undefined."""
    k, nan = len(joined.models), float("nan")
    estimates: list[dict[str, Estimate]] = [{} for _ in range(k)]
    differences: list[dict[str, Difference]] = [{} for _ in range(k - 1)]
    for metric in metrics:
        value, d = point[metric.name], draws.get(metric.name)
        usable = d is not None and metric.name not in undefined
        for i in range(k):
            low, high = (d.low[i], d.high[i]) if usable and d is not None else (nan, nan)
            estimates[i][metric.name] = Estimate(float(value[i]), float(low), float(high))
        for c in range(k - 1):
            if usable and d is not None:
                row = k + c
                differences[c][metric.name] = _difference(
                    metric, value[row], d.low[row], d.high[row], d.distribution[row]
                )
            else:
                differences[c][metric.name] = Difference(float(value[k + c]), nan, nan, nan, False)
    return estimates, differences


def _point(joined: Joined, metric: Metric) -> np.ndarray:
    """The metric of every model by scikit-learn, then every challenger-minus-first."""
    y, classes = joined.y, _codes(joined)
    values = np.array(
        [
            _safe(metric.compute, y, pred, scores, classes)
            for pred, scores in zip(joined.predicted, joined.scores, strict=True)
        ]
    )
    return np.concatenate([values, values[1:] - values[0]])


def _statistic(joined: Joined, metrics: list[Metric]) -> Callable[..., np.ndarray]:
    """positions (resamples, n) -> (statistics, resamples): models x metrics, then diffs."""
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
    """NaN when a sample leaves a metric undefined (scikit-learn raises or returns NaN)."""
    try:
        return compute(*args)
    except ValueError:
        return float("nan")


def detectable_effect(standard_error: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimum detectable effect, in the metric's units: ``(z_{1-alpha/2} + z_power) * SE``.

    The smallest true difference that a two-sided test at level ``alpha`` detects with
    probability ``power``, for a difference whose estimate has standard error
    ``standard_error`` and is about normal (Bloom 1995, eq. 1; Cohen 1988, ch. 2).
    """
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * standard_error)


def _difference(
    metric: Metric, value: float, low: float, high: float, distribution: np.ndarray
) -> Difference:
    b = len(distribution)
    rarer = min(int(np.sum(distribution <= 0)), int(np.sum(distribution >= 0)))
    p_value = min(1.0, 2 * (1 + rarer) / (b + 1))
    good_way = value > 0 if metric.higher_is_better else value < 0
    error = float(np.std(distribution, ddof=1))
    return Difference(
        float(value),
        float(low),
        float(high),
        p_value,
        bool(good_way and p_value < ALPHA),
        error,
        detectable_effect(error),
    )


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
