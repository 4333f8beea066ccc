"""`evaluate` on label data as teams write it: pandas floats, text, booleans, tombstones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from sklearn.metrics import roc_auc_score

from tests.support.evaluate_data import (
    as_keyed_recording,
    integer_classifier_lines,
    label_lines,
    labels_with_positives,
    probabilities,
    tombstone,
    write,
)
from worker.cli.main import run_cli

N = 300
IDS = [f"e{i}" for i in range(N)]
Y = labels_with_positives(N, 90)


def _models(tmp_path: Path, classes: tuple[object, object] = (0, 1)) -> list[Path]:
    return [
        write(
            tmp_path / f"{name}.jsonl",
            integer_classifier_lines(IDS, probabilities(Y, s, k), name, classes),
        )
        for k, (name, s) in enumerate((("lr", 0.8), ("hgb", 1.4)))
    ]


def _run(
    capsys: pytest.CaptureFixture[str], labels: Path, models: list[Path], *extra: str
) -> tuple[int, str, str]:
    args = ["evaluate", "--labels", str(labels), "--resamples", "100", "--metric", "accuracy"]
    for m in models:
        args += ["--predictions", str(m)]
    code = run_cli([*args, *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_pandas_float_labels_join_integer_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A label column with a gap, written by pandas: 1.0 / 0.0 for integer classes 1 / 0."""
    labels = write(tmp_path / "l.jsonl", label_lines(IDS, [float(v) for v in Y]))
    code, out, err = _run(capsys, labels, _models(tmp_path), "--json")
    assert code == 0, err
    data = orjson.loads(out)
    assert data["events"] == N
    assert data["labels"]["matching"] == {
        "kind": "integer",
        "classes": ["0", "1"],
        "matched": N,
        "written_otherwise": N,
        "written_otherwise_example": [float(Y[0]), int(Y[0])],
        "unmatched": 0,
        "unmatched_examples": [],
    }
    code, out, _ = _run(capsys, labels, _models(tmp_path))
    assert "joined by event id: 300 labelled events predicted by every model" in out
    assert (
        "label matching (canonical form, as for categories): integer classes 0, 1; "
        f"300 labels matched, 300 of them written otherwise (e.g. {float(Y[0])} as {Y[0]})"
    ) in out


def test_every_spelling_of_an_integer_class_and_what_matches_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1, "1" and 1.0 are class 1; true, "1.0", 1.5 and "one" are no class: counted, shown."""
    spellings: list[object] = [int(v) if i % 3 == 0 else str(v) if i % 3 == 1 else float(v)
                               for i, v in enumerate(Y)]  # fmt: skip
    odd = {"e1": True, "e2": "1.0", "e4": 1.5, "e5": "one"}
    written = [odd.get(i, s) for i, s in zip(IDS, spellings, strict=True)]
    labels = write(tmp_path / "l.jsonl", label_lines(IDS, written))
    code, out, err = _run(capsys, labels, _models(tmp_path), "--json")
    assert code == 0, err
    data = orjson.loads(out)
    matching = data["labels"]["matching"]
    assert data["events"] == N - 4 and matching["matched"] == N - 4
    assert data["labels"]["unseen_labels"] == {"True": 1, "1.0": 1, "1.5": 1, "one": 1}
    assert matching["unmatched_examples"] == [
        {"event_id": i, "label": v} for i, v in sorted(odd.items())
    ]
    code, out, _ = _run(capsys, labels, _models(tmp_path))
    assert (
        "labels matching no class (left out of the metrics): 4 (1.0 1, 1.5 1, True 1, one 1); "
        'e.g. e1: true, e2: "1.0", e4: 1.5'
    ) in out


@pytest.mark.parametrize(
    ("classes", "kind", "labels", "unmatched"),
    [
        ((False, True), "boolean", [True, "True", False, "False"], [1, "true"]),
        ((0.5, 1.5), "float", [0.5, "0.5", 1.5, "1.5"], [0, "0.50"]),
        (("no", "yes"), "text", ["no", "yes"], ["No", 0, False]),
    ],
)
def test_class_kinds_shown_and_matched_by_canonical_form(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    classes: tuple[object, object],
    kind: str,
    labels: list[object],
    unmatched: list[object],
) -> None:
    """Booleans, floats (named, never taken silently) and text, on the categories' rules."""
    spellings = [[x for x in labels if str(x).lower() == str(c).lower()] for c in classes]
    written = [spellings[v][i % len(spellings[v])] for i, v in enumerate(Y)]
    written[: len(unmatched)] = unmatched
    path = write(tmp_path / "l.jsonl", label_lines(IDS, written))
    code, out, err = _run(capsys, path, _models(tmp_path, classes), "--json")
    assert code == 0, err
    matching = orjson.loads(out)["labels"]["matching"]
    assert matching["kind"] == kind
    assert matching["matched"] == N - len(unmatched)
    assert [e["label"] for e in matching["unmatched_examples"]] == unmatched


def test_no_label_matches_names_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = write(tmp_path / "l.jsonl", label_lines(IDS, [["no", "yes"][v] for v in Y]))
    code, _, err = _run(capsys, labels, _models(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert (
        "0 labelled events predicted by every model: too few to evaluate: 300 labels match no "
        f'class of the models (integer classes 0, 1); e.g. event e0 label "{["no", "yes"][Y[0]]}"'
    ) in err


def test_binary_positive_class_is_the_models_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Integer classes 9 and 10: the positive class is 10 (the estimator's order), not "9"."""
    y = np.where(Y == 1, 10, 9)
    labels = write(tmp_path / "l.jsonl", label_lines(IDS, y.tolist()))
    code, out, err = _run(capsys, labels, _models(tmp_path, (9, 10)), "--json")
    assert code == 0, err
    assert orjson.loads(out)["labels"]["matching"]["classes"] == ["9", "10"]
    code, out, err = _run(
        capsys, labels, _models(tmp_path, (9, 10)), "--json", "--metric", "roc_auc"
    )
    auc = orjson.loads(out)["models"][0]["metrics"]["roc_auc"]["value"]
    assert auc == pytest.approx(roc_auc_score(y == 10, probabilities(Y, 0.8, 0)))


def test_tombstone_retracts_a_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Labels on a compacted topic keyed by event id; one retracted by a tombstone."""
    lines = as_keyed_recording(label_lines(IDS, Y.tolist()), IDS, "labels")
    labels = write(tmp_path / "labels-rec.jsonl", [*lines, tombstone(b"e7", offset=N)])
    code, out, err = _run(capsys, labels, _models(tmp_path), "--json")
    assert code == 0, err
    data = orjson.loads(out)
    assert data["events"] == N - 1 and data["labels"]["retracted"] == 1
    assert data["labels"]["event_ids"] == N - 1 and data["labels"]["lines"] == N + 1
    code, out, _ = _run(capsys, labels, _models(tmp_path))
    assert "labels: 301 lines, 299 event ids (1 retracted by a tombstone or null label)" in out
    assert "joined by event id: 299 labelled events" in out

    # a label after the tombstone stands again; a tombstone for no label is counted apart;
    # a plain file's null label retracts like a tombstone
    again = as_keyed_recording(label_lines(["e7"], [int(Y[7])]), ["e7"], "labels")
    labels = write(
        tmp_path / "again.jsonl", [*lines, tombstone(b"e7"), *again, tombstone(b"ghost")]
    )
    code, out, _ = _run(capsys, labels, _models(tmp_path), "--json")
    data = orjson.loads(out)
    assert data["events"] == N and data["labels"]["retracted"] == 0
    assert data["labels"]["null_without_label"] == 1
    plain = write(
        tmp_path / "plain.jsonl", label_lines(IDS, Y.tolist()) + label_lines(["e3"], [None])
    )
    code, out, _ = _run(capsys, plain, _models(tmp_path), "--json")
    assert orjson.loads(out)["labels"]["retracted"] == 1 and orjson.loads(out)["events"] == N - 1

    keyless = write(tmp_path / "keyless.jsonl", [*lines, tombstone(None)])
    code, _, err = _run(capsys, keyless, _models(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "keyless.jsonl:301: a tombstone" in err


def test_counts_in_the_labels_line_read_as_english(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``1 tombstones or null labels for no label`` read wrongly; the docs' example and
    JSON key (``labels.null_without_label``) are the ones printed."""
    lines = as_keyed_recording(label_lines(IDS, Y.tolist()), IDS, "labels")
    labels = write(tmp_path / "ghost.jsonl", [*lines, tombstone(b"ghost", offset=N)])
    code, out, err = _run(capsys, labels, _models(tmp_path))
    assert code == 0, err
    example = (
        "labels: 301 lines, 300 event ids (1 tombstone or null label for an id without a label)"
    )
    assert example in out
    two = write(tmp_path / "ghosts.jsonl", [*lines, tombstone(b"g1", offset=N),
                                              tombstone(b"g2", offset=N + 1)])  # fmt: skip
    code, out, err = _run(capsys, two, _models(tmp_path))
    assert "(2 tombstones or null labels for ids without a label)" in out
    docs = (Path(__file__).parents[3] / "docs" / "evaluate.md").read_text()
    assert "1 tombstone or null\n  label for an id without a label)" in docs
    assert "`labels.null_without_label`" in docs
