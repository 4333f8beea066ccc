"""Drift statistics at the edges, against exact arithmetic and scipy.

The exact figures are computed from the counts as fractions, with logarithms and square
roots in 60-digit decimals (``decimal``): independent of numpy and of the formulas the
worker uses. Cases from issue 19: JS NaN for nearly identical distributions (case 4),
NaN only when one side has no data (case 3).
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from worker.monitoring.drift import EPSILON, drift_stats, js_distance, ks, psi

DIGITS = 60


def _dec(x: Fraction) -> Decimal:
    return Decimal(x.numerator) / Decimal(x.denominator)


def _shares(counts: list[int]) -> list[Fraction]:
    total = sum(counts)
    return [Fraction(c, total) for c in counts]


def exact_js(live: list[int], reference: list[int]) -> Decimal:
    """sqrt(JSD / ln 2), JSD = (KL(p||m) + KL(q||m)) / 2, m = (p + q) / 2, exactly."""
    with localcontext() as ctx:
        ctx.prec = DIGITS
        total = Decimal(0)
        for p, q in zip(_shares(live), _shares(reference), strict=True):
            m = (p + q) / 2
            for a in (p, q):
                if a:
                    total += _dec(a) * _dec(a / m).ln()
        return (max(total, Decimal(0)) / 2 / Decimal(2).ln()).sqrt()


def exact_psi(live: list[int], reference: list[int]) -> Decimal:
    eps = Fraction(EPSILON)
    with localcontext() as ctx:
        ctx.prec = DIGITS
        total = Decimal(0)
        for p, r in zip(_shares(live), _shares(reference), strict=True):
            p, r = max(p, eps), max(r, eps)
            total += _dec(p - r) * _dec(p / r).ln()
        return total


def exact_ks(live: list[int], reference: list[int]) -> Fraction:
    gap, best = Fraction(0), Fraction(0)
    for p, r in zip(_shares(live), _shares(reference), strict=True):
        gap += p - r
        best = max(best, abs(gap))
    return best


def proportions(counts: list[int]) -> np.ndarray:
    array = np.asarray(counts, dtype=np.int64)
    return array / array.sum()


# --- issue 19, case 4 -----------------------------------------------------------------


def test_nearly_identical_distributions_have_their_small_js_not_nan() -> None:
    live = np.array([405, 4492, 0], dtype=np.int64)
    reference = np.array([2233, 24767, 0]) / 27000
    stats = drift_stats(live, reference)
    assert stats.js == pytest.approx(1.1660874e-8, rel=1e-7)
    assert float(exact_js([405, 4492, 0], [2233, 24767, 0])) == pytest.approx(
        1.1660874e-8, rel=1e-7
    )
    # scipy's sum of KL terms loses it to rounding (7.48e-9 with scipy 1.17.1)
    assert abs(stats.js - 1.1660874e-8) < abs(jensenshannon(live, reference, base=2) - 1.1660874e-8)


# --- properties -------------------------------------------------------------------------

counts_lists = st.integers(2, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 5_000), min_size=n, max_size=n).filter(any),
        st.lists(st.integers(0, 5_000), min_size=n, max_size=n).filter(any),
    )
)


@st.composite
def near_identical(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """A reference, and live counts proportional to it up to a few events per bin."""
    reference = draw(st.lists(st.integers(0, 30_000), min_size=2, max_size=12).filter(any))
    scale = draw(st.integers(1, 20))
    jitter = draw(st.lists(st.integers(-2, 2), min_size=len(reference), max_size=len(reference)))
    live = [max(r * scale + j, 0) for r, j in zip(reference, jitter, strict=True)]
    return (live if any(live) else reference), reference


@settings(max_examples=300, deadline=None)
@given(counts_lists)
def test_random_distributions_match_exact_arithmetic_and_scipy(
    pair: tuple[list[int], list[int]],
) -> None:
    live, reference = pair
    p, r = proportions(live), proportions(reference)
    js, exact = js_distance(p, r), float(exact_js(live, reference))
    assert js == pytest.approx(exact, rel=1e-6, abs=1e-15)
    assert js == pytest.approx(float(jensenshannon(p, r, base=2)), abs=1e-7)
    assert psi(p, r) == pytest.approx(float(exact_psi(live, reference)), rel=1e-9, abs=1e-15)
    assert ks(p, r) == pytest.approx(float(exact_ks(live, reference)), abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(near_identical())
def test_near_identical_distributions_match_exact_arithmetic(
    pair: tuple[list[int], list[int]],
) -> None:
    live, reference = pair
    stats = drift_stats(np.asarray(live, dtype=np.int64), proportions(reference))
    assert stats.js == pytest.approx(float(exact_js(live, reference)), rel=1e-6, abs=1e-15)
    assert stats.psi == pytest.approx(float(exact_psi(live, reference)), rel=1e-6, abs=1e-15)
    assert stats.ks == pytest.approx(float(exact_ks(live, reference)), abs=1e-12)
    assert 0.0 <= stats.js <= 1.0


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 10).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 50), min_size=n, max_size=n),
            st.lists(st.integers(0, 50), min_size=n, max_size=n),
        )
    )
)
def test_nan_exactly_when_a_side_has_no_data(pair: tuple[list[int], list[int]]) -> None:
    live, reference = pair
    shares = np.asarray(reference, dtype=np.float64) / max(sum(reference), 1)
    stats = drift_stats(np.asarray(live, dtype=np.int64), shares)
    no_data = sum(live) == 0 or sum(reference) == 0
    assert all(math.isnan(v) for v in stats) == no_data
    assert any(math.isnan(v) for v in stats) == no_data


def test_disjoint_distributions_are_one_apart() -> None:
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    assert float(exact_js([1, 0], [0, 1])) == pytest.approx(1.0, abs=1e-15)
