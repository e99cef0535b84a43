"""Per-cell exact tests: a rare or unseen category's surge counts on its own.

A pooled chi-squared test hides a rare cell that jumps from ~0 % to ~10 % of a
100-row window: the cell is pooled with other rare ones, and the loss of the
top category is too small to see. Here every reference category is its own
2 x 2 table (this category vs the rest, reference vs window) with Fisher's
exact test (hypergeometric tails, conditional on the cell's total count), and
the categories the reference never saw share one "new" cell tested against the
Good-Turing estimate of the unseen mass (``(N1 + 1) / (n + 1)``, ``N1`` the
number of reference categories seen exactly once), because conditioning on
a cell that is empty in the reference by construction would be anti-conservative.

Multiplicity inside a column: Tarone's modified Bonferroni. A discrete test
whose smallest attainable p-value is above ``alpha / K`` can never reject, so
it does not count among the ``K`` tests. With hundreds of categories most cells
hold one or two rows and cannot reject at all; only the cells that can share
the column's budget. That is what keeps power on high-cardinality columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from scipy import special, stats

from aiopsd.detectors.drift.stats import FloatArray

NEW = "__new__"
"""Key of the pooled cell of categories the reference never saw."""


class CellShift(NamedTuple):
    """One cell: reference share, window share and its own (unadjusted) p-value."""

    key: str
    reference_share: float
    window_share: float
    p_value: float


class CellOutcome(NamedTuple):
    """Tarone-adjusted p-value of the most significant cell, and every testable cell."""

    p_value: float
    statistic: float
    testable: int
    cells: tuple[CellShift, ...]


def _log_pmf(x: FloatArray, total: int, k: FloatArray, m: int) -> FloatArray:
    """Hypergeometric log-pmf by ``gammaln`` (vectorised; scipy's pmf is ~100x slower per call)."""
    def log_choose(a: FloatArray | float, b: FloatArray) -> FloatArray:
        out: FloatArray = special.gammaln(np.add(a, 1)) - special.gammaln(b + 1) - special.gammaln(
            np.subtract(a, b) + 1)
        return out
    return log_choose(k, x) + log_choose(total - k, m - x) - log_choose(float(total), np.array(float(m)))


def min_attainable(ref: FloatArray, win: FloatArray, n: int, m: int) -> FloatArray:
    """Each cell's smallest attainable two-sided Fisher p-value, given its total count (Tarone)."""
    k = ref + win
    total = n + m
    hi = np.minimum(k, m)
    lo = np.maximum(0.0, k - n)
    low = np.minimum(_log_pmf(hi, total, k, m), _log_pmf(lo, total, k, m))
    out: FloatArray = np.minimum(1.0, 2.0 * np.exp(low))
    return out


def fisher_cells(ref: FloatArray, win: FloatArray, n: int, m: int) -> FloatArray:
    """Two-sided Fisher p-values of each cell (this category vs the rest, reference vs window).

    ``ref[i]``/``win[i]`` are the cell counts among ``n`` reference / ``m`` window rows.
    Two-sided as twice the smaller tail (capped at 1), which is never below the
    minimum-likelihood two-sided p-value, so it stays conservative.
    """
    k = ref + win
    total = n + m
    upper = stats.hypergeom.sf(win - 1, total, k, m)
    lower = stats.hypergeom.cdf(win, total, k, m)
    out: FloatArray = np.minimum(1.0, 2.0 * np.minimum(upper, lower))
    return out


def tarone_k(p_min: FloatArray, alpha: float) -> int:
    """Smallest ``K >= 1`` with at most ``K`` tests whose smallest attainable p-value is ``<= alpha / K``."""
    s = np.sort(p_min)
    for k in range(1, s.size + 1):
        if int(np.searchsorted(s, alpha / k, side="right")) <= k:
            return k
    return max(int(s.size), 1)


def cell_test(ref_counts: Mapping[str, int], win_counts: Mapping[str, int], alpha: float,
              *, new_cell: bool = True, untested: frozenset[str] = frozenset()) -> CellOutcome:
    """Test every cell of a categorical column; p-value Tarone-adjusted at ``alpha``.

    ``new_cell`` adds the cell of window categories unseen in the reference
    (off for numeric point masses, where every window value has a cell). Cells in
    ``untested`` count in the totals but are not tested (the "rest" of the numeric
    point masses: it collects the selection bias of every atom chosen on the reference).
    The returned ``p_value`` is ``K * min p`` over the testable cells (capped at 1):
    the column rejects at ``alpha`` exactly when that is ``<= alpha``.
    """
    n, m = sum(ref_counts.values()), sum(win_counts.values())
    if n == 0 or m == 0:
        return CellOutcome(math.nan, math.nan, 0, ())
    keys = list(ref_counts)
    ref = np.array([ref_counts[k] for k in keys], dtype=np.float64)
    win = np.array([win_counts.get(k, 0) for k in keys], dtype=np.float64)
    p_min = min_attainable(ref, win, n, m)
    unseen = m - int(win.sum())
    q = (int(np.sum(ref == 1)) + 1.0) / (n + 1.0)
    if new_cell:
        p_min = np.append(p_min, q**m)
    if untested:
        p_min[[i for i, k in enumerate(keys) if k in untested]] = np.inf
    k_tests = tarone_k(p_min, alpha)
    testable = p_min <= alpha / k_tests
    seen = testable[:len(keys)]
    p = fisher_cells(ref[seen], win[seen], n, m)
    cells = [CellShift(k, float(r), float(w), float(pv))
             for k, r, w, pv in zip(np.array(keys, dtype=object)[seen], ref[seen] / n, win[seen] / m, p,
                                    strict=True)]
    if new_cell and testable[-1]:
        cells.append(CellShift(NEW, 0.0, unseen / m, float(stats.binom.sf(unseen - 1, m, q)) if unseen else 1.0))
    if not cells:
        return CellOutcome(1.0, 0.0, 0, ())
    best = min(cells, key=lambda c: c.p_value)
    return CellOutcome(min(1.0, k_tests * best.p_value), abs(best.window_share - best.reference_share),
                       k_tests, tuple(cells))
