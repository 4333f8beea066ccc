"""`evaluate`'s inputs: prediction files and a labels file, joined by event id. No I/O here.

A prediction file is what ``score`` or ``replay --output`` writes, or a recording
(``record``) of a prediction or challenger topic: a recording line is unwrapped to
the record in its value. One file may hold several models (a challenger topic with
two challengers); its records are split by ``model.digest``, in order of first
appearance. The same digest in two files is refused: that is not a comparison.

A labels file holds JSON lines ``{"event_id": ..., "label": ...}`` (an integer id
keeps every digit), or a recording of a labels topic whose values are such lines.
A later line for the same id replaces an earlier one (a corrected label) and is
counted as relabelled. A tombstone (a recorded message with a null value, keyed by
the event id, as a compacted labels topic deletes a key) or a line whose label is
null retracts that id's label; counted as retracted.

The join is by event id only, never by position: metrics are computed on the events
that have a label and a prediction from every model (so the paired comparison is on
the same events). Labels whose id no model predicted are counted and the first few
listed.

Labels are matched to classes by canonical form, the value rules of the bundle's
categories (``model_bundles.values.category_text``): an integer class ``1`` is matched
by the labels ``1``, ``"1"`` and ``1.0`` (pandas writes an integer column with a gap as
floats), a boolean class ``True`` by ``true`` and ``"True"``; text is itself exactly,
and a float that is not an integer (``1.5``) never matches an integer class. The
prediction records' own values give the classes' kind (integer, float, boolean,
text), shown in the summary so a float class is never taken silently. A label that
matches no class is counted per canonical text, a few are listed with their event id
and the value as written, and it is left out of the metrics (log loss and Brier
score are undefined for it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson

from model_bundles.values import category_text
from schemas.errors import BadInputError
from worker.core.ids import id_mismatch_hint, sample_ids
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
    written: dict[str, Any] = field(default_factory=dict)
    """Classification: each predicted class's canonical text -> its value as the records
    write it (``1``, ``"yes"``, ``true``, ``0.5``): the class's kind."""

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
    """The standing label of each event id, as written (str, int, float or bool)."""
    relabelled: int = 0
    lines: int = 0
    retracted: set[str] = field(default_factory=set)
    """Ids whose label a later tombstone (or null label) retracted, and none came since."""
    null_without_label: int = 0
    """Tombstones or null labels for an id that had no label at that point."""


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A recorded message with a null value: the key's label is retracted."""

    key: str | None


@dataclass(slots=True)
class Matching:
    """How the labels of the predicted events matched the models' classes."""

    kind: str
    """The classes' kind, from the predictions: integer, float, boolean, text (or mixed)."""
    matched: int = 0
    rewritten: int = 0
    """Matched labels written otherwise than the records write the class (``1.0`` for 1)."""
    rewritten_example: tuple[Any, Any] | None = None
    """(label as written, class as the records write it), the first such."""
    unmatched_examples: list[tuple[str, Any]] = field(default_factory=list)
    """(event id, label as written) of the first labels matching no class."""


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
    """Labels matching no class, counted per canonical text."""
    not_in_every_model: int = 0
    matching: Matching | None = None
    """Classification only: the label matching (see the module docstring)."""

    def class_counts(self) -> dict[str, int]:
        """Joined labels per class (classification), in ``classes`` order, zeros included."""
        counts = np.bincount(self.y.astype(np.int64), minlength=len(self.classes))
        return dict(zip(self.classes, (int(c) for c in counts), strict=True))


def read_labels(lines: Iterable[bytes], source: str) -> Labels:
    """Labels by event id, the last one standing; BadInputError naming file:line otherwise.

    A tombstone (recorded null value, keyed by the id) or a null label retracts the id's
    label; a label after it stands again.
    """
    labels = Labels()
    for where, item in _items(lines, source):
        if isinstance(item, Tombstone):
            if item.key is None:
                raise BadInputError(
                    f"{where}: a tombstone (null value) without a key retracts no known label; "
                    "key the labels topic by event id"
                )
            event_id, label = item.key, None
        elif isinstance(item, dict) and "label" in item:
            event_id, label = _event_id(item.get("event_id"), where), item["label"]
        else:
            raise BadInputError(f"{where}: not a label line (needs event_id and label)")
        if label is not None and not isinstance(label, str | int | float | bool):
            raise BadInputError(f"{where}: label must be a string, a number, or null to retract")
        labels.lines += 1
        _set_label(labels, event_id, label)
    return labels


def _set_label(labels: Labels, event_id: str, label: Any) -> None:
    if label is None:
        if labels.values.pop(event_id, None) is None:
            labels.null_without_label += 1
        else:
            labels.retracted.add(event_id)
        return
    if event_id in labels.values:
        labels.relabelled += 1
    labels.retracted.discard(event_id)
    labels.values[event_id] = label


def read_predictions(lines: Iterable[bytes], source: str) -> list[ModelPredictions]:
    """The models of one prediction file (or recording), by digest in order of appearance."""
    models: dict[str, ModelPredictions] = {}
    for where, item in _items(lines, source):
        if isinstance(item, Tombstone):
            raise BadInputError(f"{where}: a tombstone (null value) is not a prediction record")
        if not isinstance(item, dict) or not isinstance(item.get("event_id"), str):
            raise BadInputError(f"{where}: not a prediction record (no string event_id)")
        model = _model(item.get("model"), where, item.get("scores") is not None, source, models)
        event_id = item["event_id"]
        if event_id in model.predictions:
            model.duplicates += 1
            continue
        model.predictions[event_id] = predicted = _prediction(item, model.task, where)
        if model.task == "classification":
            model.scores[event_id] = item["scores"]
            model.written.setdefault(predicted, item["prediction"])
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
            if message.value is None:
                key = None if message.key is None else message.key.decode("utf-8", "replace")
                yield where, Tombstone(key)
                continue
            item = _loads(message.value, f"{where}: value")
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
        text = category_text(prediction) if isinstance(prediction, str | int | float) else None
        if text is None:
            raise BadInputError(f"{where}: a classification prediction must be a label")
        return text  # the canonical text, as the scores' keys are written
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
    # the records' order of the scores is the estimator's classes_ order: classes[1] is the
    # positive class of a binary model (sorting the texts would put "10" before "9")
    task, classes = models[0].task, list(models[0].classes)
    predicted_by_any = set().union(*(m.predictions for m in models))
    unknown = sorted(set(labels.values) - predicted_by_any)
    common = set(labels.values).intersection(*(m.predictions for m in models))
    unseen: Counter[str] = Counter()
    matching = None
    if task == "classification":
        matching, common = _match(labels, sorted(common), models, unseen)
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
        matching=matching,
    )
    in_labels = set(labels.values) & predicted_by_any
    joined.not_in_every_model = len(in_labels) - len(ids) - sum(unseen.values())
    return joined


def _match(
    labels: Labels, ids: list[str], models: Sequence[ModelPredictions], unseen: Counter[str]
) -> tuple[Matching, set[str]]:
    """The ids whose label's canonical text is a class; the others counted in ``unseen``."""
    written: dict[str, Any] = {}
    for model in models:
        for text, value in model.written.items():
            written.setdefault(text, value)
    known = set(models[0].classes)
    matching = Matching(_kind(list(written.values())))
    matched = set()
    for event_id in ids:
        label = labels.values[event_id]
        text = label_text(label)
        if text not in known:
            unseen[text] += 1
            if len(matching.unmatched_examples) < MAX_LISTED:
                matching.unmatched_examples.append((event_id, label))
            continue
        matched.add(event_id)
        matching.matched += 1
        as_class = written.get(text, text)
        if orjson.dumps(label) != orjson.dumps(as_class):
            matching.rewritten += 1
            if matching.rewritten_example is None:
                matching.rewritten_example = (label, as_class)
    return matching, matched


def label_text(label: Any) -> str:
    """A classification label's canonical text (``model_bundles.values.category_text``)."""
    return str(category_text(label))


_KINDS = {bool: "boolean", int: "integer", float: "float", str: "text"}


def _kind(values: list[Any]) -> str:
    """The classes' kind from the values the records write for them."""
    kinds = sorted({_KINDS[type(v)] for v in values})
    if not kinds:
        return "unknown"
    return kinds[0] if len(kinds) == 1 else "mixed: " + ", ".join(kinds)


def _labels_array(labels: Labels, ids: list[str], task: Task, classes: list[str]) -> np.ndarray:
    values = [labels.values[i] for i in ids]
    if task == "classification":
        return _codes([label_text(v) for v in values], classes)
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


def join_hint(joined: Joined, path: str = "labels") -> str:
    """``evaluate``'s hint when too few labelled events joined: ids from the labels and
    from each predictions file, and the files whose ids repeat; empty when some events
    joined and no id repeats (the ids are not the cause)."""
    if joined.ids and not any(m.duplicates for m in joined.models):
        return ""
    sides = [(path, sample_ids(joined.labels.values))]
    sides += [(m.source, sample_ids(m.predictions)) for m in joined.models]
    repeated = [(m.source, f"{m.duplicates} duplicates") for m in joined.models if m.duplicates]
    return id_mismatch_hint(sides, repeated)
