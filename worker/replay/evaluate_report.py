"""An evaluation as text for people, or JSON for machines (``evaluate [--json]``)."""

from __future__ import annotations

import math
from typing import Any

from worker.replay.evaluate import Joined
from worker.replay.evaluate_stats import Difference, Estimate, Evaluation


def input_lines(joined: Joined) -> list[str]:
    """What was read and joined, and what was left out and why."""
    labels = joined.labels
    lines = [
        f"labels: {labels.lines} lines, {len(labels.values)} event ids"
        + (f" ({labels.relabelled} relabelled, the last label kept)" if labels.relabelled else "")
    ]
    for model in joined.models:
        dups = f", {model.duplicates} duplicate ids ignored" if model.duplicates else ""
        lines.append(
            f"predictions: {model.label} ({model.source}): {len(model.predictions)} events{dups}"
        )
    lines.append(f"joined by event id: {len(joined.ids)} labelled events predicted by every model")
    if joined.unknown_ids:
        first = ", ".join(joined.unknown_listed)
        lines.append(f"labels for unknown event ids: {joined.unknown_ids} (first: {first})")
    if joined.not_in_every_model:
        lines.append(f"labelled events missing from some model: {joined.not_in_every_model}")
    if joined.unseen_labels:
        seen = ", ".join(f"{k} {v}" for k, v in sorted(joined.unseen_labels.items()))
        lines.append(f"labels no model predicts (left out of the metrics): {seen}")
    return lines


def table_rows(evaluation: Evaluation) -> list[list[str]]:
    """Header then one row per model and metric; challengers' rows add the difference."""
    rows = [["model", "metric", "value", "95% CI", "vs first", "95% CI", "p", "verdict"]]
    differences: list[dict[str, Difference] | None] = [None, *evaluation.differences]
    for i, model in enumerate(evaluation.joined.models):
        for metric in evaluation.metrics:
            estimate = evaluation.estimates[i][metric.name]
            row = [model.label if metric is evaluation.metrics[0] else "", metric.name]
            row += [_num(estimate.value), _interval(estimate)]
            diff = differences[i]
            if diff is None:
                row += ["", "", "", "first" if metric is evaluation.metrics[0] else ""]
            else:
                d = diff[metric.name]
                row += [_num(d.value, signed=True), _interval(d, signed=True), _p(d.p_value)]
                row.append("better" if d.better else "not better")
            rows.append(row)
    return rows


def to_text(evaluation: Evaluation) -> list[str]:
    """Input summary, the table, and how the intervals were computed."""
    rows = table_rows(evaluation)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    table = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return [*input_lines(evaluation.joined), "", *table, "", method_line(evaluation)]


def method_line(evaluation: Evaluation) -> str:
    return (
        f"95% intervals and p-values: paired percentile bootstrap, {evaluation.resamples} "
        f"resamples, seed {evaluation.seed}; better = p < 0.05 the metric's good way"
    )


def to_json(evaluation: Evaluation) -> dict[str, Any]:
    joined = evaluation.joined
    return {
        "task": joined.task,
        "events": len(joined.ids),
        "labels": {
            "lines": joined.labels.lines,
            "event_ids": len(joined.labels.values),
            "relabelled": joined.labels.relabelled,
            "unknown_ids": joined.unknown_ids,
            "first_unknown_ids": joined.unknown_listed,
            "unseen_labels": dict(sorted(joined.unseen_labels.items())),
            "missing_from_some_model": joined.not_in_every_model,
        },
        "bootstrap": {"resamples": evaluation.resamples, "seed": evaluation.seed},
        "models": [
            {
                "name": m.name,
                "version": m.version,
                "digest": m.digest,
                "source": m.source,
                "predictions": len(m.predictions),
                "metrics": {k: _estimate(v) for k, v in evaluation.estimates[i].items()},
                "vs_first": (
                    {k: _diff(v) for k, v in evaluation.differences[i - 1].items()} if i else None
                ),
            }
            for i, m in enumerate(joined.models)
        ],
    }


def _estimate(e: Estimate) -> dict[str, float | None]:
    return {"value": _finite(e.value), "low": _finite(e.low), "high": _finite(e.high)}


def _diff(d: Difference) -> dict[str, Any]:
    return {
        "difference": _finite(d.value),
        "low": _finite(d.low),
        "high": _finite(d.high),
        "p_value": _finite(d.p_value),
        "better": d.better,
    }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _num(value: float, signed: bool = False) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _interval(e: Estimate | Difference, signed: bool = False) -> str:
    return f"[{_num(e.low, signed)}, {_num(e.high, signed)}]"


def _p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else f"{p:.4f}"
