"""``evaluate --report R.html``: one self-contained page (no network) with the table and plots.

Plots are matplotlib SVG, embedded as ``data:`` images: calibration curves and one-vs-rest
ROC curves per label for classifiers (``sklearn.calibration.calibration_curve``,
``sklearn.metrics.roc_curve``), residuals against predictions and their histogram for
regressors. The SVG carries no date and a fixed id salt, so the same inputs write the
same bytes.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve

from worker.evaluate.inputs import Joined
from worker.evaluate.report import input_lines, method_lines, table_rows
from worker.evaluate.stats import Evaluation, counting_warnings

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
td.better { color: #176b1f; font-weight: bold; }
figure { margin: 1em 0; }
img { max-width: 100%; }
"""


def render(evaluation: Evaluation, title: str = "scoring-worker evaluate") -> str:
    """The whole page as text; library warnings of the plots are counted in the evaluation."""
    with counting_warnings(evaluation.warnings):
        plots = _figures(evaluation.joined)
    rows = table_rows(evaluation)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="better">{html.escape(c)}</td>'
            if c == "better"
            else f"<td>{html.escape(c)}</td>"
            for c in row
        )
        + "</tr>"
        for row in rows[1:]
    )
    facts = "".join(f"<li>{html.escape(line)}</li>" for line in input_lines(evaluation.joined))
    figures = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/svg+xml;base64,{svg}">'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, svg in plots
    )
    method = "".join(f"<li>{html.escape(line)}</li>" for line in method_lines(evaluation))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><ul id="inputs">{facts}</ul>'
        f'<table id="evaluation"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        f'<ul id="method">{method}</ul>{figures}</body></html>\n'
    )


def _figures(joined: Joined) -> list[tuple[str, str]]:
    """(caption, base64 SVG) of every plot for the task."""
    if joined.task == "classification":
        return [
            ("calibration (one-vs-rest per label)", _svg(joined, _calibration)),
            ("ROC (one-vs-rest per label)", _svg(joined, _roc)),
        ]
    return [("residuals (label minus prediction)", _svg(joined, _residuals))]


def _svg(joined: Joined, draw: Callable[[Joined, Figure], None]) -> str:
    with plt.rc_context({"svg.hashsalt": "scoring-worker", "svg.fonttype": "path"}):
        figure = plt.figure(figsize=(4.2 * _panels(joined), 3.8))
        try:
            draw(joined, figure)
            figure.tight_layout()
            out = io.StringIO()
            figure.savefig(out, format="svg", metadata={"Date": None})
        finally:
            plt.close(figure)
    return base64.b64encode(out.getvalue().encode()).decode()


def _panels(joined: Joined) -> int:
    if joined.task == "regression":
        return 2
    return 1 if len(joined.classes) == 2 else len(joined.classes)


def _one_vs_rest(joined: Joined) -> list[tuple[int, str]]:
    """The labels plotted: the positive one for two labels, else every label."""
    classes = joined.classes
    return [(1, classes[1])] if len(classes) == 2 else list(enumerate(classes))


def _calibration(joined: Joined, figure: Figure) -> None:
    for panel, (column, label) in enumerate(_one_vs_rest(joined), start=1):
        ax: Axes = figure.add_subplot(1, _panels(joined), panel)
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
        for model, scores in zip(joined.models, joined.scores, strict=True):
            assert scores is not None
            observed, predicted = calibration_curve(
                joined.y == column, scores[:, column], n_bins=10
            )
            ax.plot(predicted, observed, marker="o", label=model.label)
        ax.set(title=f"{label}", xlabel="predicted probability", ylabel="observed share")
        ax.legend(fontsize="x-small")


def _roc(joined: Joined, figure: Figure) -> None:
    for panel, (column, label) in enumerate(_one_vs_rest(joined), start=1):
        ax: Axes = figure.add_subplot(1, _panels(joined), panel)
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
        for model, scores in zip(joined.models, joined.scores, strict=True):
            assert scores is not None
            fpr, tpr, _ = roc_curve(joined.y == column, scores[:, column])
            ax.plot(fpr, tpr, label=model.label)
        ax.set(title=f"{label}", xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(fontsize="x-small")


def _residuals(joined: Joined, figure: Figure) -> None:
    scatter, histogram = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for model, predicted in zip(joined.models, joined.predicted, strict=True):
        residuals = joined.y - predicted
        scatter.scatter(predicted, residuals, s=6, alpha=0.5, label=model.label)
        histogram.hist(residuals, bins=40, alpha=0.5, label=model.label)
    scatter.axhline(0, color="grey", linestyle=":")
    scatter.set(xlabel="prediction", ylabel="residual", title="residuals")
    histogram.set(xlabel="residual", ylabel="events", title="residual distribution")
    scatter.legend(fontsize="x-small")
