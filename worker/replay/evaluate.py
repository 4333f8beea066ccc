"""`evaluate`'s inputs: prediction files and a labels file, joined by event id. No I/O here.

A prediction file is what ``score`` or ``replay --output`` writes, or a recording
(``record``) of a prediction or challenger topic: a recording line is unwrapped to
the record in its value. One file may hold several models (a challenger topic with
two challengers); its records are split by ``model.digest``, in order of first
appearance. The same digest in two files is refused: that is not a comparison.

A labels file holds JSON lines ``{"event_id": ..., "label": ...}`` (an integer id
keeps every digit), or a recording of a labels topic whose values are such lines.
A later line for the same id replaces an earlier one (a corrected label) and is
counted as relabelled.

The join is by event id only, never by position: metrics are computed on the events
that have a label and a prediction from every model (so the paired comparison is on
the same events). Labels whose id no model predicted are counted and the first few
listed; classification labels outside the models' classes are counted per label and
left out of the metrics (log loss and Brier score are undefined for them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson

from model_bundles.errors import BadInputError
from worker.core.recording import is_envelope, message_from_envelope

Task = Literal["classification", "regression"]
MAX_LISTED = 10


@dataclass(slots=True)
class ModelPredictions:
    """One model's records from one file: predictions (and scores) by event id."""

    name: str
    version: str
    digest: str
    source: str
    task: Task
    predictions: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    duplicates: int = 0

    @property
    def label(self) -> str:
        """``name version`` and the digest's first 12 characters after its algorithm."""
        return f"{self.name} {self.version} {self.digest.split(':')[-1][:12]}"

    @property
    def classes(self) -> list[str]:
        first = next(iter(self.scores.values()), {})
        return list(first)


@dataclass(slots=True)
class Labels:
    values: dict[str, Any] = field(default_factory=dict)
    relabelled: int = 0
    lines: int = 0


@dataclass(slots=True)
class Joined:
    """The labelled events every model predicted, as arrays in one order (sorted ids)."""

    task: Task
    models: list[ModelPredictions]
    ids: list[str]
    y: np.ndarray
    """Labels, shape (n,): classification as int64 positions in ``classes`` (integer codes
    keep scikit-learn's per-resample work small), regression as float64."""
    predicted: list[np.ndarray]
    """Per model, shape (n,): predicted labels as positions in ``classes``, or values."""
    scores: list[np.ndarray | None]
    """Per model: probabilities, shape (n, len(classes)), columns in ``classes`` order."""
    classes: list[str]
    labels: Labels
    unknown_ids: int = 0
    unknown_listed: list[str] = field(default_factory=list)
    unseen_labels: Counter[str] = field(default_factory=Counter)
    not_in_every_model: int = 0


def read_labels(lines: Iterable[bytes], source: str) -> Labels:
    """Labels by event id; BadInputError naming file:line for anything else."""
    labels = Labels()
    for where, item in _items(lines, source):
        if not isinstance(item, dict) or "label" not in item:
            raise BadInputError(f"{where}: not a label line (needs event_id and label)")
        event_id, label = _event_id(item.get("event_id"), where), item["label"]
        if not isinstance(label, str | int | float | bool) or label is None:
            raise BadInputError(f"{where}: label must be a string or a number")
        labels.lines += 1
        if event_id in labels.values:
            labels.relabelled += 1
        labels.values[event_id] = label
    return labels


def read_predictions(lines: Iterable[bytes], source: str) -> list[ModelPredictions]:
    """The models of one prediction file (or recording), by digest in order of appearance."""
    models: dict[str, ModelPredictions] = {}
    for where, item in _items(lines, source):
        if not isinstance(item, dict) or not isinstance(item.get("event_id"), str):
            raise BadInputError(f"{where}: not a prediction record (no string event_id)")
        model = _model(item.get("model"), where, item.get("scores") is not None, source, models)
        event_id = item["event_id"]
        if event_id in model.predictions:
            model.duplicates += 1
            continue
        model.predictions[event_id] = _prediction(item, model.task, where)
        if model.task == "classification":
            model.scores[event_id] = item["scores"]
    if not models:
        raise BadInputError(f"{source}: no prediction records")
    return list(models.values())


def _items(lines: Iterable[bytes], source: str) -> Iterator[tuple[str, Any]]:
    """Decoded JSON of each non-blank line, unwrapped from a recording envelope."""
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        where = f"{source}:{number}"
        item = _loads(line, where)
        if is_envelope(item):
            message = message_from_envelope(item, where)
            item = _loads(message.value or b"null", f"{where}: value")
            if isinstance(item, dict) and "event_id" not in item and message.key is not None:
                item["event_id"] = message.key.decode("utf-8", errors="replace")
        yield where, item


def _loads(line: bytes, where: str) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"{where}: not valid JSON: {exc}") from None


def _event_id(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise BadInputError(f"{where}: event_id must be a string or an integer")


def _model(
    block: Any, where: str, has_scores: bool, source: str, models: dict[str, ModelPredictions]
) -> ModelPredictions:
    if not isinstance(block, dict) or not isinstance(block.get("digest"), str):
        raise BadInputError(f"{where}: prediction record without a model digest")
    task: Task = "classification" if has_scores else "regression"
    model = models.get(block["digest"])
    if model is None:
        model = ModelPredictions(
            str(block.get("name", "?")),
            str(block.get("version", "?")),
            block["digest"],
            source,
            task,
        )
        models[model.digest] = model
    elif model.task != task:
        raise BadInputError(f"{where}: model {model.label} has records with and without scores")
    return model


def _prediction(item: dict[str, Any], task: Task, where: str) -> Any:
    prediction, scores = item.get("prediction"), item.get("scores")
    if task == "classification":
        if not isinstance(scores, dict) or not all(_is_number(v) for v in scores.values()):
            raise BadInputError(f"{where}: scores must map labels to numbers")
        return str(prediction)
    if not isinstance(prediction, int | float) or isinstance(prediction, bool):
        raise BadInputError(f"{where}: a regression prediction must be a number")
    return float(prediction)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_comparable(models: Sequence[ModelPredictions]) -> None:
    """One task and one label set for every model, and no bundle twice."""
    seen: dict[str, ModelPredictions] = {}
    for model in models:
        if model.digest in seen:
            raise BadInputError(
                f"{seen[model.digest].source} and {model.source} both hold predictions of "
                f"bundle {model.digest}: a comparison needs different bundles"
            )
        seen[model.digest] = model
    first = models[0]
    for model in models[1:]:
        if model.task != first.task:
            raise BadInputError(
                f"mixed tasks: {first.label} is a {first.task} model, {model.label} a "
                f"{model.task} model"
            )
        if sorted(model.classes) != sorted(first.classes):
            raise BadInputError(
                f"{first.label} and {model.label} predict different labels: "
                f"{sorted(first.classes)} vs {sorted(model.classes)}"
            )


def join(labels: Labels, models: Sequence[ModelPredictions]) -> Joined:
    """The labelled events every model predicted (see the module docstring)."""
    check_comparable(models)
    task, classes = models[0].task, sorted(models[0].classes)
    predicted_by_any = set().union(*(m.predictions for m in models))
    unknown = sorted(set(labels.values) - predicted_by_any)
    common = set(labels.values).intersection(*(m.predictions for m in models))
    unseen: Counter[str] = Counter()
    if task == "classification":
        known = set(classes)
        unseen.update(str(labels.values[i]) for i in common if str(labels.values[i]) not in known)
        common = {i for i in common if str(labels.values[i]) in known}
    ids = sorted(common)
    joined = Joined(
        task=task,
        models=list(models),
        ids=ids,
        y=_labels_array(labels, ids, task, classes),
        predicted=[_predicted(m, ids, task, classes) for m in models],
        scores=[_scores(m, ids, classes) if task == "classification" else None for m in models],
        classes=classes,
        labels=labels,
        unknown_ids=len(unknown),
        unknown_listed=unknown[:MAX_LISTED],
        unseen_labels=unseen,
    )
    in_labels = set(labels.values) & predicted_by_any
    joined.not_in_every_model = len(in_labels) - len(ids) - sum(unseen.values())
    return joined


def _labels_array(labels: Labels, ids: list[str], task: Task, classes: list[str]) -> np.ndarray:
    values = [labels.values[i] for i in ids]
    if task == "classification":
        return _codes([str(v) for v in values], classes)
    bad = next((v for v in values if not _is_number(v)), None)
    if bad is not None:
        raise BadInputError(f"regression labels must be numbers, got {bad!r}")
    return np.array(values, dtype=np.float64)


def _predicted(
    model: ModelPredictions, ids: list[str], task: Task, classes: list[str]
) -> np.ndarray:
    values = [model.predictions[i] for i in ids]
    if task == "classification":
        unknown = next((v for v in values if v not in set(classes)), None)
        if unknown is not None:
            raise BadInputError(f"{model.source}: prediction {unknown!r} is not among its scores")
        return _codes(values, classes)
    return np.array(values, dtype=np.float64)


def _codes(values: list[str], classes: list[str]) -> np.ndarray:
    position = {c: i for i, c in enumerate(classes)}
    return np.array([position[v] for v in values], dtype=np.int64)


def _scores(model: ModelPredictions, ids: list[str], classes: list[str]) -> np.ndarray:
    out = np.empty((len(ids), len(classes)), dtype=np.float64)
    for row, event_id in enumerate(ids):
        scores = model.scores[event_id]
        out[row] = [scores[c] for c in classes]
    return out
