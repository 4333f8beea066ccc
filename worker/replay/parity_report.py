"""A parity result as text for people or JSON for machines (``parity [--json]``)."""

from __future__ import annotations

from typing import Any

from worker.core.ids import id_mismatch_hint
from worker.replay.parity import Diff, Outputs, ParityResult, Side


def id_hint(result: ParityResult) -> str | None:
    """Why records did not pair: no id in common, or ids that repeat (an id_column that
    is not unique), with a few ids from each side; None when the ids are not the cause."""
    e, a = result.expected, result.actual
    disjoint = result.matched == 0 and e.records > 0 and a.records > 0
    repeats = bool(e.repeated_ids or a.repeated_ids) and not result.ok
    if not (disjoint or repeats):
        return None
    sides = [(e.name, e.ids), (a.name, a.ids)] if disjoint else []
    repeated = [(side.name, "e.g. " + ", ".join(side.repeated_ids)) for side in (e, a)
                if side.repeated_ids]  # fmt: skip
    return id_mismatch_hint(sides, repeated)


def to_json(result: ParityResult) -> dict[str, Any]:
    """Every count, the agreement rate, the drift per output and the first listed ids."""
    return {
        "ok": result.ok,
        "expected": _side(result.expected),
        "actual": _side(result.actual),
        "matched": result.matched,
        "identical": result.identical,
        "mismatched": result.mismatched,
        "missing_in_actual": len(result.missing_in_actual),
        "missing_in_expected": len(result.missing_in_expected),
        "agreement_rate": result.agreement_rate,
        "score_diff": {label: _diff(d) for label, d in result.score_diff.items()},
        "prediction_diff": _diff(result.prediction_diff) if result.prediction_diff else None,
        "label_changes": [
            {"expected": a, "actual": b, "count": n}
            for (a, b), n in sorted(result.label_changes.items())
        ],
        "first_mismatches": [
            {"event_id": m.event_id, "expected": _outputs(m.expected), "actual": _outputs(m.actual)}
            for m in result.first_mismatches
        ],
        "first_missing_in_actual": result.missing_in_actual[:10],
        "first_missing_in_expected": result.missing_in_expected[:10],
        "id_hint": id_hint(result),
    }


def to_text(result: ParityResult) -> list[str]:
    e, a = result.expected, result.actual
    lines = [
        f"expected: {e.name}: {e.records} records{_dups(e)}",
        f"actual:   {a.name}: {a.records} records{_dups(a)}",
        f"matched by event id: {result.matched}; identical {result.identical}, "
        f"mismatched {result.mismatched}",
        f"missing in actual: {len(result.missing_in_actual)}{_first(result.missing_in_actual)}",
        f"missing in expected: {len(result.missing_in_expected)}"
        f"{_first(result.missing_in_expected)}",
    ]
    if result.agreement_rate is not None:
        lines.append(
            f"agreement (same prediction): {result.agreement_rate:.4%} "
            f"({result.agreed}/{result.matched})"
        )
    if result.prediction_diff is not None:
        lines.append(f"prediction |difference|: {_diff_text(result.prediction_diff)}")
    for label, diff in result.score_diff.items():
        lines.append(f"score {label} |difference|: {_diff_text(diff)}")
    if result.label_changes:
        changes = ", ".join(
            f"{x} -> {y}: {n}" for (x, y), n in result.label_changes.most_common(10)
        )
        lines.append(f"prediction changes: {changes}")
    lines += [f"model expected: {m} ({n} records)" for m, n in sorted(e.models.items())]
    lines += [f"model actual:   {m} ({n} records)" for m, n in sorted(a.models.items())]
    for m in result.first_mismatches:
        lines.append(f"mismatch {m.event_id}: expected {_brief(m.expected)}")
        lines.append(f"{' ' * (len(m.event_id) + 11)}actual   {_brief(m.actual)}")
    hint = id_hint(result)
    if hint:
        lines.append(f"ids: {hint}")
    lines.append("parity: OK" if result.ok else "parity: FAILED")
    return lines


def _side(side: Side) -> dict[str, Any]:
    return {
        "file": side.name,
        "records": side.records,
        "duplicates": side.duplicates,
        "conflicting": side.conflicting,
        "models": dict(sorted(side.models.items())),
        "predictions": dict(sorted(side.predictions.items())),
    }


def _diff(diff: Diff) -> dict[str, float]:
    return {"max_abs": diff.max_abs, "mean_abs": diff.mean_abs}


def _outputs(outputs: Outputs) -> dict[str, Any]:
    return {"prediction": outputs.prediction, "scores": outputs.scores, "model": outputs.model}


def _dups(side: Side) -> str:
    if not side.duplicates:
        return ""
    conflicting = f", {side.conflicting} conflicting" if side.conflicting else ""
    return f" ({side.duplicates} duplicate event ids{conflicting})"


def _first(ids: list[str], n: int = 5) -> str:
    if not ids:
        return ""
    more = ", ..." if len(ids) > n else ""
    return f" (first: {', '.join(ids[:n])}{more})"


def _diff_text(diff: Diff) -> str:
    return f"max {diff.max_abs:.6g}, mean {diff.mean_abs:.6g}"


def _brief(outputs: Outputs) -> str:
    scores = ""
    if outputs.scores:
        scores = " " + ", ".join(f"{k}={v!r}" for k, v in outputs.scores.items())
    return f"{outputs.prediction!r}{scores}"
