"""An evaluation as text for people, or JSON for machines (``evaluate [--json]``)."""

from __future__ import annotations

import math
from typing import Any

import orjson

from worker.core.counts import counted
from worker.evaluate.inputs import Joined, Matching
from worker.evaluate.stats import (
    PAIRED,
    STRATIFIED,
    Difference,
    Estimate,
    Evaluation,
    class_counts_text,
    detectable_effect,
)

_METHODS = {
    PAIRED: "paired: the events drawn with replacement",
    STRATIFIED: "stratified: the events of each class drawn within that class, keeping its count",
}


def input_lines(joined: Joined) -> list[str]:
    """What was read and joined, and what was left out and why."""
    labels = joined.labels
    notes = []
    if labels.relabelled:
        notes.append(f"{labels.relabelled} relabelled, the last label kept")
    if labels.retracted:
        notes.append(f"{len(labels.retracted)} retracted by a tombstone or null label")
    if labels.null_without_label:
        n = labels.null_without_label
        notes.append(
            "1 tombstone or null label for an id without a label"
            if n == 1
            else f"{n} tombstones or null labels for ids without a label"
        )
    lines = [
        f"labels: {counted(labels.lines, 'line')}, {counted(len(labels.values), 'event id')}"
        + (f" ({'; '.join(notes)})" if notes else "")
    ]
    for model in joined.models:
        dups = f", {model.duplicates} duplicate ids ignored" if model.duplicates else ""
        lines.append(
            f"predictions: {model.label} ({model.source}): "
            f"{counted(len(model.predictions), 'event')}{dups}"
        )
    if joined.matching is not None:
        lines.append(matching_line(joined, joined.matching))
    lines.append(f"joined by event id: {len(joined.ids)} labelled events predicted by every model")
    if joined.unknown_ids:
        first = ", ".join(joined.unknown_listed)
        lines.append(f"labels for unknown event ids: {joined.unknown_ids} (first: {first})")
    if joined.not_in_every_model:
        lines.append(f"labelled events missing from some model: {joined.not_in_every_model}")
    if joined.unseen_labels and joined.matching is not None:
        lines.append(unmatched_line(joined, joined.matching))
    return lines


def matching_line(joined: Joined, matching: Matching) -> str:
    """How labels met classes: the classes' kind, matched, written otherwise, unmatched."""
    line = (
        f"label matching (canonical form, as for categories): {matching.kind} classes "
        f"{', '.join(joined.classes)}; {matching.matched} labels matched"
    )
    if matching.rewritten_example is not None:
        label, as_class = matching.rewritten_example
        line += f", {matching.rewritten} of them written otherwise (e.g. {_json(label)} as "
        line += f"{_json(as_class)})"
    unmatched = sum(joined.unseen_labels.values())
    return line + (f"; {unmatched} match no class" if unmatched else "")


def unmatched_line(joined: Joined, matching: Matching) -> str:
    """Labels matching no class: counts per canonical text and the first few as written."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(joined.unseen_labels.items()))
    examples = ", ".join(f"{i}: {_json(v)}" for i, v in matching.unmatched_examples[:3])
    return (
        f"labels matching no class (left out of the metrics): "
        f"{sum(joined.unseen_labels.values())} ({counts}); e.g. {examples}"
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def table_rows(evaluation: Evaluation) -> list[list[str]]:
    """Header then one row per model and metric; challengers' rows add the difference."""
    rows = [["model", "metric", "value", "95% CI", "vs first", "95% CI", "p", "verdict"]]
    rows[0].append("bootstrap")
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
            rows.append([*row, evaluation.methods.get(metric.name, PAIRED)])
    return rows


def to_text(evaluation: Evaluation) -> list[str]:
    """Input summary, the table, and how the intervals were computed."""
    rows = table_rows(evaluation)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    table = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return [*input_lines(evaluation.joined), "", *table, "", *method_lines(evaluation)]


def method_lines(evaluation: Evaluation) -> list[str]:
    """How the figures were made, what has none and why, what the test could detect."""
    used = {m: [n for n, v in evaluation.methods.items() if v == m] for m in _METHODS}
    ways = "; ".join(f"{_METHODS[m]} ({', '.join(names)})" for m, names in used.items() if names)
    lines = [
        f"95% intervals and p-values: percentile bootstrap, {evaluation.resamples} resamples, "
        f"seed {evaluation.seed}, the same draw for every model; {ways}; "
        "better = p < 0.05 the metric's good way"
    ]
    if evaluation.joined.task == "classification":
        lines.append(class_counts_text(evaluation.joined))
    lines += [
        f"{name}: no interval and no p-value: {why}" for name, why in evaluation.undefined.items()
    ]
    lines += detectable_lines(evaluation)
    if evaluation.warnings:
        top = ", ".join(f"{m} x{c}" for m, c in evaluation.warnings.most_common(3))
        lines.append(f"library warnings caught: {evaluation.warnings.total()} ({top})")
    return lines


def detectable_lines(evaluation: Evaluation) -> list[str]:
    """Per challenger, the minimum detectable effect of every metric's difference."""
    factor = detectable_effect(1.0, evaluation.alpha, evaluation.power)
    lines = []
    for model, row in zip(evaluation.joined.models[1:], evaluation.differences, strict=True):
        figures = ", ".join(
            f"{name} {_num(d.detectable, plus_minus=True)}" for name, d in row.items()
        )
        lines.append(
            f"detectable effect, {model.label} vs first ({len(evaluation.joined.ids)} labels; "
            f"{evaluation.power:.0%} power at the {evaluation.alpha:.0%} level, {factor:.2f} x "
            f"the bootstrap standard error of the difference): {figures}; "
            "a smaller true difference likely reads as 'not better'"
        )
    return lines


def gate_failure(evaluation: Evaluation, metric: str) -> str:
    """The gate's line when some challenger is not better on ``metric``: each one, with its
    difference, and whether that difference is within what the labels could detect."""
    why = evaluation.undefined.get(metric)
    if why is not None:
        failing = [m.label for m in evaluation.joined.models[1:]]
        return f"gate: not better on {metric}: {', '.join(failing)} (no p-value: {why})"
    parts = []
    for model, row in zip(evaluation.joined.models[1:], evaluation.differences, strict=True):
        d = row[metric]
        if d.better:
            continue
        note = f"{_num(d.value, signed=True)}, p {_p(d.p_value)}"
        if abs(d.value) < d.detectable:
            note += f", within the detectable effect {_num(d.detectable, plus_minus=True)}"
            note += ": too few labels to tell"
        parts.append(f"{model.label} ({note})")
    return f"gate: not better on {metric}: {'; '.join(parts)}"


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
            "retracted": len(joined.labels.retracted),
            "null_without_label": joined.labels.null_without_label,
            "matching": _matching(joined),
        },
        "bootstrap": {
            "resamples": evaluation.resamples,
            "seed": evaluation.seed,
            "methods": evaluation.methods,
            "undefined": evaluation.undefined,
            "labels_per_class": (
                joined.class_counts() if joined.task == "classification" else None
            ),
            "detectable_effect": {"power": evaluation.power, "alpha": evaluation.alpha},
        },
        "warnings": {
            "count": evaluation.warnings.total(),
            "messages": dict(evaluation.warnings.most_common()),
        },
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


def _matching(joined: Joined) -> dict[str, Any] | None:
    m = joined.matching
    if m is None:
        return None
    return {
        "kind": m.kind,
        "classes": joined.classes,
        "matched": m.matched,
        "written_otherwise": m.rewritten,
        "written_otherwise_example": list(m.rewritten_example) if m.rewritten_example else None,
        "unmatched": sum(joined.unseen_labels.values()),
        "unmatched_examples": [{"event_id": i, "label": v} for i, v in m.unmatched_examples],
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
        "standard_error": _finite(d.standard_error),
        "detectable_effect": _finite(d.detectable),
    }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _num(value: float, signed: bool = False, plus_minus: bool = False) -> str:
    if not math.isfinite(value):
        return "n/a"
    if plus_minus:
        return f"±{abs(value):.4f}"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _interval(e: Estimate | Difference, signed: bool = False) -> str:
    return f"[{_num(e.low, signed)}, {_num(e.high, signed)}]"


def _p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else f"{p:.4f}"
