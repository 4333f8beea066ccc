"""Drift computed offline, independently of ``worker.monitoring.drift`` and ``drift_bins``.

Bins the raw values of a set of scored events with the reference's own ``bin_indices``
(or a plain Python category lookup) and computes PSI, KS and JS with numpy and scipy, as
docs/metrics.md defines them. Unit and integration tests compare the worker's figures
with these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from model_bundles.bundle import Bundle
from model_bundles.reference import Distribution, NumericReference
from worker.core.scoring import ScoredBatch

EPSILON = 1e-4


def offline_bins(distribution: Distribution, values: Sequence[Any]) -> np.ndarray:
    """Counts per reference bin of the non-missing values."""
    if isinstance(distribution, NumericReference):
        array = np.asarray(values, dtype=np.float64)
        present = array[~np.isnan(array)]
        return np.bincount(distribution.bin_indices(present), minlength=len(distribution.edges) + 1)
    counts = np.zeros(len(distribution.categories) + 1, dtype=np.int64)
    for value in values:
        if isinstance(value, float) and math.isnan(value):
            continue
        label = str(value)
        index = distribution.categories.index(label) if label in distribution.categories else -1
        counts[index] += 1
    return counts


def offline_stats(counts: np.ndarray, reference: Sequence[float]) -> tuple[float, float, float]:
    live = counts / counts.sum()
    ref = np.asarray(reference, dtype=np.float64)
    p, r = np.clip(live, EPSILON, None), np.clip(ref, EPSILON, None)
    offline_psi = float(np.sum((p - r) * np.log(p / r)))
    offline_ks = float(np.max(np.abs(np.cumsum(live) - np.cumsum(ref))))
    offline_js = float(jensenshannon(live, ref, base=2))
    return offline_psi, offline_ks, offline_js


def offline_report(bundle: Bundle, batches: Sequence[ScoredBatch]) -> dict[str, Any]:
    """Drift of the union of ``batches``, computed from their raw values."""
    frame = pd.concat([b.frame for b in batches], ignore_index=True)
    predictions = np.concatenate([b.outputs.predictions for b in batches])
    reference = bundle.reference
    out: dict[str, Any] = {
        "prediction": offline_stats(
            offline_bins(reference.prediction, predictions.tolist()),
            reference.prediction.proportions,
        )
    }
    for name, distribution in reference.features.items():
        values = frame[name].tolist()
        out[name] = offline_stats(offline_bins(distribution, values), distribution.proportions)
        out[f"missing:{name}"] = float(frame[name].isna().mean())
    scores = [b.outputs.scores for b in batches]
    if reference.class_scores and all(s is not None for s in scores):
        stacked = np.concatenate([s for s in scores if s is not None])
        for i, label in enumerate(bundle.manifest.classes or []):
            distribution = reference.class_scores[str(label)]
            counts = offline_bins(distribution, stacked[:, i].tolist())
            out[f"class:{label}"] = offline_stats(counts, distribution.proportions)
    return out
