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
Each cell's two directions are separate one-sided tests in that count: a rare
cell can only rise significantly, so its fall costs nothing and its rise gets
the whole ``alpha / K`` (twice what half of a two-sided test would get).
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
        out: FloatArray = (
            special.gammaln(np.add(a, 1)) - special.gammaln(b + 1) - special.gammaln(np.subtract(a, b) + 1)
        )
        return out

    return log_choose(k, x) + log_choose(total - k, m - x) - log_choose(float(total), np.array(float(m)))


def min_attainable_tails(ref: FloatArray, win: FloatArray, n: int, m: int) -> tuple[FloatArray, FloatArray]:
    """Each cell's smallest attainable upper- and lower-tail Fisher p-values, given its total (Tarone).

    The upper tail is smallest when every row of the cell's total falls in the
    window (``P(X = min(k, m))``), the lower when as few as possible do.
    """
    k = ref + win
    total = n + m
    hi = np.minimum(k, m)
    lo = np.maximum(0.0, k - n)
    up: FloatArray = np.minimum(1.0, np.exp(_log_pmf(hi, total, k, m)))
    down: FloatArray = np.minimum(1.0, np.exp(_log_pmf(lo, total, k, m)))
    return up, down


def min_attainable(ref: FloatArray, win: FloatArray, n: int, m: int) -> FloatArray:
    """Each cell's smallest attainable two-sided (twice the smaller tail) Fisher p-value."""
    up, down = min_attainable_tails(ref, win, n, m)
    out: FloatArray = np.minimum(1.0, 2.0 * np.minimum(up, down))
    return out


GRID_CELLS = 200_000
"""Up to this many (cell x window count) pairs, tails are summed on a grid of log-pmfs (one numpy
call, exact); beyond it scipy's ``hypergeom`` (per-call overhead, but no grid to hold)."""


def _tail_sum(logp: FloatArray) -> FloatArray:
    """``min(1, sum(exp(logp)))`` per row, scaled by the row's largest term (no underflow)."""
    top = np.max(logp, axis=1, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    out: FloatArray = np.minimum(1.0, np.exp(safe[:, 0]) * np.sum(np.exp(logp - safe), axis=1))
    return out


def fisher_tails(ref: FloatArray, win: FloatArray, n: int, m: int) -> tuple[FloatArray, FloatArray]:
    """One-sided Fisher p-values of each cell: the window holds more (upper) / fewer (lower) rows."""
    k = ref + win
    total = n + m
    if k.size * (m + 1) <= GRID_CELLS:
        j = np.arange(m + 1, dtype=np.float64)[None, :]
        kk = k[:, None]
        inside = (j <= np.minimum(kk, m)) & (j >= np.maximum(0.0, kk - n))
        logp = np.where(
            inside, _log_pmf(np.where(inside, j, 0.0), total, np.broadcast_to(kk, inside.shape), m), -np.inf
        )
        x = win[:, None]
        return _tail_sum(np.where(j >= x, logp, -np.inf)), _tail_sum(np.where(j <= x, logp, -np.inf))
    upper: FloatArray = np.asarray(stats.hypergeom.sf(win - 1, total, k, m), dtype=np.float64)
    lower: FloatArray = np.asarray(stats.hypergeom.cdf(win, total, k, m), dtype=np.float64)
    return upper, lower


def fisher_cells(ref: FloatArray, win: FloatArray, n: int, m: int) -> FloatArray:
    """Two-sided Fisher p-values of each cell (this category vs the rest, reference vs window).

    ``ref[i]``/``win[i]`` are the cell counts among ``n`` reference / ``m`` window rows.
    Two-sided as twice the smaller tail (capped at 1), which is never below the
    minimum-likelihood two-sided p-value, so it stays conservative.
    """
    upper, lower = fisher_tails(ref, win, n, m)
    out: FloatArray = np.minimum(1.0, 2.0 * np.minimum(upper, lower))
    return out


def tarone_k(p_min: FloatArray, alpha: float) -> int:
    """Smallest ``K >= 1`` with at most ``K`` tests whose smallest attainable p-value is ``<= alpha / K``."""
    s = np.sort(p_min)
    for k in range(1, s.size + 1):
        if int(np.searchsorted(s, alpha / k, side="right")) <= k:
            return k
    return max(int(s.size), 1)


def cell_test(
    ref_counts: Mapping[str, int],
    win_counts: Mapping[str, int],
    alpha: float,
    *,
    new_cell: bool = True,
    untested: frozenset[str] = frozenset(),
    singletons: int | None = None,
) -> CellOutcome:
    """Test every cell of a categorical column; p-value Tarone-adjusted at ``alpha``.

    ``new_cell`` adds the cell of window categories unseen in the reference;
    ``singletons`` is the number of reference values seen exactly once, for its
    Good-Turing mass when ``ref_counts`` does not hold every value (numeric
    point masses: the atoms and one "rest" cell). Cells in
    ``untested`` count in the totals but are not tested (the "rest" of the numeric
    point masses: it collects the selection bias of every atom chosen on the reference).
    Each cell is two one-sided tests (its share rose / fell), each with its own
    smallest attainable p-value, so a rare cell, which can only rise
    significantly, spends ``alpha / K`` on its upper tail instead of half of it on
    a two-sided test. The returned ``p_value`` is ``K * min p`` over the testable
    one-sided tests (capped at 1): the column rejects at ``alpha`` exactly when
    that is ``<= alpha``. A cell's ``p_value`` is its smallest testable one-sided p.
    """
    n, m = sum(ref_counts.values()), sum(win_counts.values())
    if n == 0 or m == 0:
        return CellOutcome(math.nan, math.nan, 0, ())
    keys = list(ref_counts)
    nk = len(keys)
    ref = np.array([ref_counts[k] for k in keys], dtype=np.float64)
    win = np.array([win_counts.get(k, 0) for k in keys], dtype=np.float64)
    up_min, down_min = min_attainable_tails(ref, win, n, m)
    if untested:
        skip = [i for i, k in enumerate(keys) if k in untested]
        up_min[skip] = down_min[skip] = np.inf
    unseen = m - int(win.sum())
    q = ((int(np.sum(ref == 1)) if singletons is None else singletons) + 1.0) / (n + 1.0)
    p_min = np.concatenate([up_min, down_min, [q**m] if new_cell else []])
    k_tests = tarone_k(p_min[np.isfinite(p_min)], alpha)
    testable = p_min <= alpha / k_tests
    t_up, t_down = testable[:nk], testable[nk : 2 * nk]
    seen = t_up | t_down
    upper, lower = fisher_tails(ref[seen], win[seen], n, m)
    p = np.minimum(np.where(t_up[seen], upper, np.inf), np.where(t_down[seen], lower, np.inf))
    cells = [
        CellShift(k, float(r), float(w), float(pv))
        for k, r, w, pv in zip(np.array(keys, dtype=object)[seen], ref[seen] / n, win[seen] / m, p, strict=True)
    ]
    if new_cell and testable[-1]:
        # Its reference share is the Good-Turing unseen mass: the share the window is expected to hold.
        cells.append(CellShift(NEW, min(q, 1.0), unseen / m, float(special.bdtrc(unseen - 1, m, q)) if unseen else 1.0))
    if not cells:
        return CellOutcome(1.0, 0.0, 0, ())
    best = min(cells, key=lambda c: c.p_value)
    return CellOutcome(
        min(1.0, k_tests * best.p_value), abs(best.window_share - best.reference_share), k_tests, tuple(cells)
    )


def missing_test(
    ref_missing: int, ref_total: int, win_missing: int, win_total: int, alpha: float
) -> tuple[float, float]:
    """Missing vs present, reference vs window: exact one-sided Fisher tails, Tarone over the two.

    Returns ``(window rate - reference rate, p)``, ``p`` Tarone-adjusted at
    ``alpha`` like :func:`cell_test`. Exact for any window size: a reference
    with no missing value at all cannot see its rate fall, so the rise gets
    the whole budget; one missing value in a 100-row window against a 2,000-row
    reference without any cannot be significant (its smallest attainable p,
    m/(n+m), is above ``alpha``: p = 1), while 20 % missing is (p < 1e-20).
    """
    if ref_total == 0 or win_total == 0:
        return math.nan, math.nan
    diff = win_missing / win_total - ref_missing / ref_total
    out = cell_test(
        {"missing": ref_missing, "present": ref_total - ref_missing},
        {"missing": win_missing, "present": win_total - win_missing},
        alpha,
        new_cell=False,
        untested=frozenset({"present"}),
    )
    return diff, (1.0 if math.isnan(out.p_value) else out.p_value)
