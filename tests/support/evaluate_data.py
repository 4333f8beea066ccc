"""Synthetic labelled tasks whose answer is known, written as prediction and label files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from model_bundles.values import category_text
from worker.core.recording import RecordedMessage, encode_message

CLASSES = ["no", "yes"]


def model(name: str) -> dict[str, str]:
    return {"name": name, "version": "1", "digest": f"sha256:{name}"}


def labels_for(n: int, seed: int = 1) -> np.ndarray:
    """Binary labels, index 0 or 1 into CLASSES."""
    return np.random.default_rng(seed).integers(0, 2, n)


def probabilities(y: np.ndarray, signal: float, seed: int) -> np.ndarray:
    """P(yes) from a logit that leans ``signal`` towards the truth, with unit noise.
    signal 0 is a coin flip; larger is a better model."""
    rng = np.random.default_rng(seed)
    logit = signal * (2 * y - 1) + rng.standard_normal(len(y))
    return np.asarray(1 / (1 + np.exp(-logit)), dtype=np.float64)


def classifier_lines(ids: list[str], p_yes: np.ndarray, name: str) -> list[bytes]:
    out = []
    for event_id, p in zip(ids, p_yes.tolist(), strict=True):
        scores = {"no": 1 - p, "yes": p}
        prediction = "yes" if p >= 0.5 else "no"
        record = {
            "event_id": event_id,
            "prediction": prediction,
            "scores": scores,
            "model": model(name),
        }
        out.append(orjson.dumps(record))
    return out


def regressor_lines(ids: list[str], values: np.ndarray, name: str) -> list[bytes]:
    return [
        orjson.dumps({"event_id": i, "prediction": v, "scores": None, "model": model(name)})
        for i, v in zip(ids, values.tolist(), strict=True)
    ]


def label_lines(ids: list[str], labels: list[object]) -> list[bytes]:
    return [orjson.dumps({"event_id": i, "label": v}) for i, v in zip(ids, labels, strict=True)]


def as_recording(lines: list[bytes], topic: str) -> list[bytes]:
    """The same values as ``record`` of a topic would write them."""
    return [
        encode_message(RecordedMessage(topic, 0, n, None, None, None, line))
        for n, line in enumerate(lines)
    ]


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def labels_with_positives(n: int, positives: int, seed: int = 1) -> np.ndarray:
    """Binary labels (0 or 1) with exactly ``positives`` ones, at random places."""
    y = np.zeros(n, dtype=np.int64)
    y[np.random.default_rng(seed).choice(n, positives, replace=False)] = 1
    return y


def integer_classifier_lines(
    ids: list[str], p_one: np.ndarray, name: str, classes: tuple[object, object] = (0, 1)
) -> list[bytes]:
    """Records of a model with classes ``classes`` (integer by default), as the worker
    writes them: the prediction in the class's own JSON type, the scores keyed by its
    canonical text (``model_bundles.values.category_text``)."""
    keys = [str(category_text(c)) for c in classes]
    out = []
    for event_id, p in zip(ids, p_one.tolist(), strict=True):
        record = {
            "event_id": event_id,
            "prediction": classes[1] if p >= 0.5 else classes[0],
            "scores": {keys[0]: 1 - p, keys[1]: p},
            "model": model(name),
        }
        out.append(orjson.dumps(record))
    return out


def tombstone(key: bytes | None, topic: str = "labels", offset: int = 0) -> bytes:
    """A recorded message with a null value: what a compacted topic's delete looks like."""
    return encode_message(RecordedMessage(topic, 0, offset, None, None, key, None))


def as_keyed_recording(lines: list[bytes], ids: list[str], topic: str) -> list[bytes]:
    """``as_recording`` with each message keyed by its event id (a compacted labels topic)."""
    return [
        encode_message(RecordedMessage(topic, 0, n, None, None, i.encode(), line))
        for n, (i, line) in enumerate(zip(ids, lines, strict=True))
    ]
