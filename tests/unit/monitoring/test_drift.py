"""Drift: binning, the sliding window and PSI/KS/JS against an independent offline computation
(``tests.support.drift_offline``, which uses neither ``worker.monitoring.drift`` nor
``worker.monitoring.drift_bins``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from model_bundles.bundle import Bundle
from model_bundles.reference import CategoricalReference, NumericReference
from tests.support.drift_offline import offline_report, offline_stats
from tests.support.scored import stream_batches
from worker.core.scoring import ScoredBatch
from worker.monitoring.drift import (
    DriftSettings,
    SlidingWindow,
    drift_stats,
    js_distance,
    ks,
    psi,
)
from worker.monitoring.drift_bins import DriftLayout, DriftReport, drift_report

TOLERANCE = 1e-9


def assert_matches_offline(report: DriftReport, expected: dict[str, Any]) -> None:
    assert report.prediction == pytest.approx(expected["prediction"], abs=TOLERANCE, rel=0)
    for name, stats in report.features.items():
        assert stats == pytest.approx(expected[name], abs=TOLERANCE, rel=0), name
        assert report.missing_ratio[name] == pytest.approx(
            expected[f"missing:{name}"], abs=TOLERANCE
        )
    for label, stats in report.class_scores.items():
        assert stats == pytest.approx(expected[f"class:{label}"], abs=TOLERANCE, rel=0), label


def window_report(bundle: Bundle, batches: Sequence[ScoredBatch], **config: Any) -> DriftReport:
    layout = DriftLayout(bundle.reference, bundle.features, bundle.manifest.classes)
    window = SlidingWindow(layout.width, DriftSettings(**config))
    for t, batch in enumerate(batches):
        counts = layout.count(batch.frame, batch.outputs.predictions, batch.outputs.scores)
        window.push(counts, len(batch.frame), now_s=float(t))
    return drift_report(layout, *window.totals(float(len(batches))))


# --- statistics ---


def test_statistics_follow_the_documented_formulas() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        live = rng.dirichlet(np.ones(8))
        ref = rng.dirichlet(np.ones(8))
        live[rng.integers(8)] = 0.0  # an empty bin: clamped for PSI, not for JS/KS
        live /= live.sum()
        expected = offline_stats(live * 1000, ref)
        assert psi(live, ref) == pytest.approx(expected[0], abs=TOLERANCE)
        assert ks(live, ref) == pytest.approx(expected[1], abs=TOLERANCE)
        assert js_distance(live, ref) == pytest.approx(expected[2], abs=TOLERANCE)


def test_identical_distributions_have_no_drift() -> None:
    ref = np.array([0.2, 0.3, 0.5])
    stats = drift_stats(np.array([20, 30, 50], dtype=np.int64), ref)
    assert stats == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)


def test_empty_window_is_nan_not_zero() -> None:
    stats = drift_stats(np.zeros(3, dtype=np.int64), np.array([0.2, 0.3, 0.5]))
    assert all(math.isnan(v) for v in stats)


def test_psi_of_a_reference_sample_is_low_and_of_a_shifted_one_high() -> None:
    rng = np.random.default_rng(11)
    ref = np.full(10, 0.1)
    same = rng.multinomial(10_000, ref)
    assert drift_stats(same, ref).psi < 0.1
    shifted = rng.multinomial(10_000, np.array([0, 0, 0.05, 0.05, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2]))
    assert drift_stats(shifted, ref).psi > 0.25


# --- binning and the window on real scored batches ---


def test_window_equals_offline_computation(penguins_bundle: Bundle) -> None:
    batches = stream_batches(penguins_bundle, 6_000, 500, seed=5, drift=["bill_length_mm=+3"])
    batches += stream_batches(penguins_bundle, 6_000, 500, seed=6)
    report = window_report(penguins_bundle, batches, window_events=3_000)
    assert report.events == 3_000
    assert_matches_offline(report, offline_report(penguins_bundle, batches[-6:]))


def test_regression_window_equals_offline_computation(mass_bundle: Bundle) -> None:
    batches = stream_batches(mass_bundle, 4_000, 400, seed=2, with_species=True)
    report = window_report(mass_bundle, batches, window_events=2_000)
    assert report.events == 2_000
    assert report.class_scores == {}
    assert_matches_offline(report, offline_report(mass_bundle, batches[-5:]))


def test_training_distribution_shows_low_psi(penguins_bundle: Bundle) -> None:
    report = window_report(penguins_bundle, stream_batches(penguins_bundle, 10_000, 1_000, seed=1))
    assert report.prediction.psi < 0.1
    for name, stats in report.features.items():
        assert stats.psi < 0.1, name


def test_shifted_feature_shows_high_psi_and_the_others_low(penguins_bundle: Bundle) -> None:
    batches = stream_batches(penguins_bundle, 10_000, 1_000, seed=1, drift=["bill_length_mm=+8"])
    report = window_report(penguins_bundle, batches)
    assert report.features["bill_length_mm"].psi > 0.25
    for name, stats in report.features.items():
        if name != "bill_length_mm":
            assert stats.psi < 0.1, name


def test_unknown_and_missing_values_get_their_own_slots() -> None:
    reference = CategoricalReference(
        categories=["a", "b"], proportions=[0.5, 0.5, 0.0], missing_rate=0.0
    )
    values = np.empty(6, dtype=object)
    values[:] = ["a", "a", "b", "zzz", "yyy", np.nan]
    numeric = NumericReference(edges=[1.0, 2.0], proportions=[0.3, 0.4, 0.3], missing_rate=0.0)
    from worker.monitoring.drift_bins import CategoricalBinner, NumericBinner

    assert CategoricalBinner(reference.categories).count(values).tolist() == [2, 1, 2, 1]
    as_str = pd.Series(values).astype("str").array  # pandas' default string storage
    assert CategoricalBinner(reference.categories).count(as_str).tolist() == [2, 1, 2, 1]
    # bin i is (edges[i-1], edges[i]]: 1.0 falls in bin 0, 2.0 in bin 1
    x = np.array([0.5, 1.0, 1.5, 2.0, 2.5, np.nan])
    assert NumericBinner(numeric.edges).count(x).tolist() == [2, 2, 1, 1]


# --- window eviction ---


def push_all(window: SlidingWindow, sizes: Sequence[int], times: Sequence[float]) -> list[Any]:
    pushed = []
    for i, (size, t) in enumerate(zip(sizes, times, strict=True)):
        counts = np.zeros(window.width, dtype=np.int64)
        counts[i % window.width] = size
        pushed.append(counts.copy())
        window.push(counts, size, t)
    return pushed


def test_event_window_keeps_the_newest_batches_holding_the_window() -> None:
    window = SlidingWindow(4, DriftSettings(window_events=100, window_slots=100))
    pushed = push_all(window, [40, 40, 40, 40], [0, 1, 2, 3])
    totals, events = window.totals(4.0)
    # 120 events in the last three batches; dropping the oldest of them would leave 80 < 100
    assert events == 120
    assert totals.tolist() == sum(pushed[1:]).tolist()


def test_time_window_forgets_batches_older_than_window_s() -> None:
    window = SlidingWindow(3, DriftSettings(window_events=None, window_s=10.0, window_slots=100))
    push_all(window, [5, 7, 9], [0.0, 20.0, 25.0])
    assert window.totals(26.0)[1] == 16
    assert window.totals(30.0)[1] == 9  # the batch at 20 s left at 30 s
    assert window.totals(40.0)[1] == 0  # nothing scored lately: empty, drift is NaN


def test_small_batches_share_slots_so_memory_stays_bounded() -> None:
    window = SlidingWindow(2, DriftSettings(window_events=1_000, window_slots=10))
    push_all(window, [1] * 10_000, [float(i) for i in range(10_000)])
    assert window.totals(1e9)[1] == 1_000
    assert window.slots <= 11


def test_time_window_is_exact_to_one_slot() -> None:
    window = SlidingWindow(2, DriftSettings(window_events=None, window_s=10.0, window_slots=10))
    push_all(window, [1] * 1_000, [i / 10 for i in range(1_000)])  # 10 events/s for 100 s
    events = window.totals(99.95)[1]
    assert 100 <= events <= 110  # the last 10 s, give or take one 1 s slot
    assert window.slots <= 11


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 50), min_size=1, max_size=60),
    window_events=st.integers(1, 200),
    slots=st.integers(1, 16),
)
def test_window_is_a_suffix_just_large_enough(
    sizes: list[int], window_events: int, slots: int
) -> None:
    window = SlidingWindow(3, DriftSettings(window_events=window_events, window_slots=slots))
    pushed = push_all(window, sizes, [float(i) for i in range(len(sizes))])
    totals, events = window.totals(float(len(sizes)))
    suffixes = {k: sum(sizes[k:]) for k in range(len(sizes) + 1)}
    start = next(
        k
        for k, e in suffixes.items()
        if e == events and (totals == sum(pushed[k:], np.zeros(3, dtype=np.int64))).all()
    )
    assert events >= min(window_events, sum(sizes))
    biggest_slot = max(window_events // slots, *sizes)
    assert events < window_events + biggest_slot or start == 0


def test_settings_are_checked() -> None:
    assert DriftSettings().window_events == 10_000
    assert (DriftSettings().psi_warning, DriftSettings().psi_critical) == (0.1, 0.25)
    with pytest.raises(ValidationError):
        DriftSettings(window_events=None, window_s=None)
    with pytest.raises(ValidationError):
        DriftSettings(psi_warning=0.3, psi_critical=0.2)
    with pytest.raises(ValidationError):
        DriftSettings(window_events=0)
