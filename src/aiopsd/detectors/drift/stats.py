"""Two-sample tests against a reference that was sorted / counted once.

Every function takes the reference in its precomputed form (a sorted array, a
category-count mapping) and the window as raw values, so testing a window costs
``O(m log m + m log n)`` for ``m`` window rows and ``n`` reference rows, with no
pass over the reference. The p-values come from scipy's distributions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]

MIN_EXPECTED = 5.0
"""Smallest expected window count a chi-squared cell may have; smaller cells are pooled."""

FISHER_BELOW = 50.0
"""A 2 x 2 table gets Fisher's exact test when its smallest expected count is below this."""

PSI_EPS = 1e-4
"""Floor for bin shares in PSI so empty bins give a large, finite contribution."""


class TestOutcome(NamedTuple):
    statistic: float
    p_value: float


class WindowRanks(NamedTuple):
    """A window's distinct values, their counts, and where they fall in the sorted reference."""

    values: FloatArray
    counts: npt.NDArray[np.int64]
    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    m: int


def window_ranks(ref_sorted: FloatArray, window: FloatArray) -> WindowRanks:
    """One ``np.unique`` of the window and two ``searchsorted`` calls, shared by KS, rank-sum and PSI."""
    values, counts = np.unique(window, return_counts=True)
    return WindowRanks(
        values,
        counts,
        np.searchsorted(ref_sorted, values, side="left"),
        np.searchsorted(ref_sorted, values, side="right"),
        int(window.size),
    )


def _ks_sf(d: float, en: int) -> float:
    # scipy's exact-ish kstwo costs ~10 ms at n ~ 10^4; the limiting distribution is accurate there.
    return float(stats.kstwo.sf(d, en)) if en <= 1000 else float(stats.kstwobign.sf(d * math.sqrt(en)))


def ks_sorted(ref_sorted: FloatArray, window: FloatArray | WindowRanks) -> TestOutcome:
    """Two-sample Kolmogorov-Smirnov test with a pre-sorted reference.

    The supremum of ``|F_ref - F_win|`` is reached at a jump of either ECDF;
    between two consecutive distinct window values ``F_win`` is flat, so the
    largest gap on that interval sits just left of the next window value
    (``F_ref`` rising) or at the window value itself (``F_win`` just jumped).
    Both are read with ``np.searchsorted`` on the sorted reference. The p-value is
    scipy's ``kstwo`` with the effective sample size ``n*m/(n+m)`` — the same
    approximation ``scipy.stats.ks_2samp(method="asymp")`` uses. With ties the
    test is conservative (p-values too large), never anti-conservative.
    """
    w = window if isinstance(window, WindowRanks) else window_ranks(ref_sorted, window)
    n, m = ref_sorted.size, w.m
    if n == 0 or m == 0:
        return TestOutcome(math.nan, math.nan)
    g_right = np.cumsum(w.counts) / m  # F_win at each distinct window value
    g_left = np.concatenate(([0.0], g_right[:-1]))  # F_win just left of it
    d = max(float(np.max(w.left / n - g_left)), float(np.max(g_right - w.right / n)), 0.0)
    en = max(round(n * m / (n + m)), 1)
    return TestOutcome(d, min(max(_ks_sf(d, en), 0.0), 1.0))


def rank_sum_sorted(ref_sorted: FloatArray, ref_tie_term: float, window: FloatArray | WindowRanks) -> TestOutcome:
    """Two-sided Mann-Whitney U (Wilcoxon rank-sum) test with a pre-sorted reference.

    ``U = sum over window values of (#ref < x + 0.5 * #ref == x)``; mean ``n*m/2``
    and the exact tie-corrected variance ``n*m/12 * ((N+1) - T/(N(N-1)))`` where
    ``T = sum(t^3 - t)`` over tie groups of the pooled sample, updated from the
    reference's own ``ref_tie_term`` for values the window shares. The normal
    approximation is excellent at ``m >= 20`` because U is a sum of bounded terms.
    Returns the standardised statistic ``z`` and its two-sided p-value. This test
    is what catches a modest location shift in a 100-row window, where KS has
    little power (see the module docs of :mod:`aiopsd.detectors.drift`).
    """
    w = window if isinstance(window, WindowRanks) else window_ranks(ref_sorted, window)
    n, m = ref_sorted.size, w.m
    if n == 0 or m == 0:
        return TestOutcome(math.nan, math.nan)
    counts, left = w.counts, w.left
    t_ref = (w.right - w.left).astype(np.float64)
    u = float(np.sum(counts * (left + 0.5 * t_ref)))
    t_all = t_ref + counts
    tie = ref_tie_term - float(np.sum(t_ref**3 - t_ref)) + float(np.sum(t_all**3 - t_all))
    big_n = n + m
    var = n * m / 12.0 * ((big_n + 1) - tie / (big_n * (big_n - 1)))
    if var <= 0:
        return TestOutcome(0.0, 1.0)
    z = (u - n * m / 2.0) / math.sqrt(var)
    return TestOutcome(z, math.erfc(abs(z) / math.sqrt(2.0)))  # 2 * norm.sf(|z|), without scipy's overhead


def tie_term(ref_sorted: FloatArray) -> float:
    """``sum(t^3 - t)`` over tie groups of a sorted array (computed once per reference)."""
    if ref_sorted.size == 0:
        return 0.0
    _, t = np.unique(ref_sorted, return_counts=True)
    tf = t.astype(np.float64)
    return float(np.sum(tf**3 - tf))


def singletons(ref_sorted: FloatArray) -> int:
    """How many values of a sorted array occur exactly once (Good-Turing's ``N1``), in one pass."""
    if ref_sorted.size == 0:
        return 0
    step = np.diff(ref_sorted) != 0
    return int(np.sum(np.concatenate(([True], step)) & np.concatenate((step, [True]))))


class ChiSquareOutcome(NamedTuple):
    statistic: float
    p_value: float
    dof: int
    new_category_share: float
    bins: int


def chi2_pooled(ref_counts: Mapping[str, int], window_counts: Mapping[str, int]) -> ChiSquareOutcome:
    """Chi-squared test of homogeneity (2 x K contingency) with rare-cell pooling.

    A reference category keeps its own cell only when its expected window count
    ``m * share`` is at least :data:`MIN_EXPECTED`; the others, and every category
    the reference never saw, share one "other" cell. If that cell is still too
    small it absorbs the smallest kept cells until it is not, but the largest
    category always keeps its own cell. When that leaves two cells (a binary
    column, or one dominant category) the 2 x 2 table gets Fisher's exact test
    instead of the chi-squared approximation, whose small-count behaviour is
    poor. Pooling keeps the test honest in 100-row windows with long-tailed
    categories; an unseen category still shows up as an over-full "other" cell.
    ``new_category_share`` is the share of window rows whose category the
    reference never saw.
    """
    n = sum(ref_counts.values())
    m = sum(window_counts.values())
    unseen = sum(c for k, c in window_counts.items() if k not in ref_counts)
    new_share = unseen / m if m else math.nan
    if n == 0 or m == 0:
        return ChiSquareOutcome(math.nan, math.nan, 0, new_share, 0)
    ordered = sorted(ref_counts, key=lambda k: ref_counts[k])
    kept = [k for k in ordered if m * ref_counts[k] / n >= MIN_EXPECTED] or ordered[-1:]
    other_ref = n - sum(ref_counts[k] for k in kept)
    while len(kept) > 1 and m * other_ref / n < MIN_EXPECTED and (other_ref > 0 or unseen > 0):
        other_ref += ref_counts[kept.pop(0)]
    ref_row = [float(ref_counts[k]) for k in kept]
    win_row = [float(window_counts.get(k, 0)) for k in kept]
    other_win = m - sum(win_row)
    if other_ref > 0 or other_win > 0:
        ref_row.append(float(other_ref))
        win_row.append(float(other_win))
    if len(ref_row) < 2:
        return ChiSquareOutcome(0.0, 1.0, 0, new_share, len(ref_row))
    table = np.array([ref_row, win_row])
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    dof = len(ref_row) - 1
    # Two cells with small counts: Fisher's exact test; else the chi-squared approximation (Fisher on a
    # 100,000-row 2 x 2 table costs ~20 ms and agrees with it to many digits).
    small = dof == 1 and float(expected.min()) < FISHER_BELOW
    p = float(stats.fisher_exact(table.astype(np.int64)).pvalue) if small else float(stats.chi2.sf(stat, dof))
    return ChiSquareOutcome(stat, min(max(p, 0.0), 1.0), dof, new_share, len(ref_row))


def psi(ref_shares: FloatArray, win_shares: FloatArray) -> float:
    """Population stability index ``sum((w - r) * ln(w / r))`` with shares floored at :data:`PSI_EPS`."""
    r = np.maximum(ref_shares, PSI_EPS)
    w = np.maximum(win_shares, PSI_EPS)
    return float(np.sum((w - r) * np.log(w / r)))


def holm(p_values: FloatArray) -> FloatArray:
    """Holm step-down adjusted p-values (NaN entries stay NaN and do not count as tests)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    k = idx.size
    if k == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    adj = np.minimum(1.0, p[order] * (k - np.arange(k)))
    out[order] = np.maximum.accumulate(adj)
    return out
