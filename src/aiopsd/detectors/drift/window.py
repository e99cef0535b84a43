"""Test one window against a reference profile: :func:`test_window` -> :class:`DriftResult`."""

from __future__ import annotations

import math
from typing import Literal, cast

import numpy as np
import pandas as pd
from scipy import stats as sps

from aiopsd.detectors.drift import budget, stats
from aiopsd.detectors.drift.cells import NEW, CellShift, cell_test, missing_test
from aiopsd.detectors.drift.profile import (
    ColumnProfile,
    PerformanceProfile,
    ReferenceProfile,
    abs_errors,
    atom_key,
    atom_threshold,
    category_counts,
    correct_flags,
    numeric_values,
    performance_metrics,
)
from aiopsd.detectors.drift.stats import FloatArray
from aiopsd.models import Frozen

DEFAULT_ALPHA = 0.01
"""Family-wise error rate per window: the chance that a no-drift window raises drift.

Spent by weighted Bonferroni (:mod:`aiopsd.detectors.drift.budget`): each column
gets an equal share, and inside a column the share is split between its tests by
how much power each has for the shifts users meet (see docs/ml-monitoring.md).
The discrete tests are conservative, so the measured rate is below this.
"""

MIN_KS = 0.05
MIN_AUC_SHIFT = 0.025
MIN_TVD = 0.05
MIN_CELL_SHIFT = 0.02
MIN_MISSING_DIFF = 0.01
MIN_PERF_DROP = 0.0
"""Effect-size floors. A significant test only counts as drift when its effect is
at least this big. At 100-row windows significance alone implies larger effects,
so the floors never bind there; on 100,000-row windows they stop alerts on
differences too small to matter (e.g. a 0.01-std mean shift)."""

Test = Literal["ks", "rank-sum", "chi2", "cells", "point-mass", "missing-rate", "none"]


class TestStat(Frozen):
    """One raw test: statistic, unadjusted p-value and the effect size it is judged on."""

    __test__ = False  # not a pytest class

    statistic: float | None
    p_value: float | None
    effect: float | None


class ShareShift(Frozen):
    """A category (or numeric point mass) whose share moved: the drift explanation."""

    value: str
    reference_share: float
    window_share: float


class ColumnDrift(Frozen):
    """The verdict for one column. ``p_value`` is adjusted for the whole window (weighted Bonferroni).

    ``effect`` is the size the columns are ranked by (PSI); ``shifts`` lists the
    categories that gained or lost the most share (largest change first).
    """

    name: str
    kind: Literal["numeric", "categorical"]
    role: Literal["feature", "prediction"]
    test: Test
    statistic: float | None
    p_value: float | None
    psi: float | None
    drift: bool
    missing_rate_reference: float
    missing_rate_window: float
    new_category_share: float | None = None
    tests: dict[str, TestStat]
    shifts: tuple[ShareShift, ...] = ()


class PerformanceDrift(Frozen):
    """Model quality in the window vs the reference (only when the window has labels)."""

    task: Literal["regression", "classification"]
    test: Literal["rank-sum", "fisher"]
    statistic: float | None
    p_value: float | None
    drift: bool
    rows: int
    reference: dict[str, float]
    window: dict[str, float]


class DriftResult(Frozen):
    """Outcome of one window. ``score >= 1`` exactly when ``drift`` (the anomaly-score convention)."""

    drift: bool
    score: float
    alpha: float
    rows: int
    drifted: tuple[str, ...]
    columns: dict[str, ColumnDrift]
    performance: PerformanceDrift | None = None

    def ranked(self) -> list[ColumnDrift]:
        """Drifted columns by effect size (PSI), largest first: what to look at first."""
        cols = [self.columns[n] for n in self.drifted]
        return sorted(cols, key=lambda c: -(c.psi if c.psi is not None else 0.0))

    def summary(self) -> str:
        """One line for a person: what drifted, by which test, how much."""
        if not self.drift:
            return f"no drift in {len(self.columns)} columns ({self.rows} rows)"
        parts = []
        for name in self.drifted:
            c = self.columns[name]
            psi = "" if c.psi is None else f", PSI {c.psi:.2f}"
            parts.append(f"{name} ({c.test} p={c.p_value:.2g}{psi})")
        if self.performance is not None and self.performance.drift:
            p = self.performance
            change = ", ".join(f"{k} {p.reference.get(k, math.nan):.3g}->{v:.3g}" for k, v in p.window.items())
            parts.append(f"performance ({change})")
        return (
            f"drift in {len(self.drifted)} of {len(self.columns)} columns"
            f"{' and performance' if self.performance and self.performance.drift else ''}"
            f" ({self.rows} rows): " + "; ".join(parts)
        )


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


MAX_SHIFTS = 5
"""How many gained/lost categories a column's explanation lists."""


def _stat(statistic: float, p_value: float, effect: float) -> TestStat:
    return TestStat(statistic=_finite(statistic), p_value=_finite(p_value), effect=_finite(effect))


def _shifts(cells: tuple[CellShift, ...], top: int = MAX_SHIFTS) -> tuple[ShareShift, ...]:
    moved = sorted(cells, key=lambda c: -abs(c.window_share - c.reference_share))[:top]
    return tuple(
        ShareShift(value=c.key, reference_share=c.reference_share, window_share=c.window_share)
        for c in moved
        if c.window_share != c.reference_share
    )


_REST = frozenset({"rest"})


def _numeric_tests(
    col: ColumnProfile, vals: FloatArray, budget: dict[str, float]
) -> tuple[dict[str, TestStat], float | None, tuple[ShareShift, ...]]:
    ranks = stats.window_ranks(col.sorted_values, vals)
    ks = stats.ks_sorted(col.sorted_values, ranks)
    rs = stats.rank_sum_sorted(col.sorted_values, col.tie_term, ranks)
    n, m = col.sorted_values.size, vals.size
    # Common-language effect size: P(window > reference) - 0.5, from z and the variance of U.
    auc_shift = rs.statistic * math.sqrt((n + m + 1) / (12.0 * n * m)) if n and m else math.nan
    psi = None
    if m and n:
        bins = np.searchsorted(col.psi_edges, ranks.values, side="right")
        shares = np.bincount(bins, weights=ranks.counts, minlength=col.psi_edges.size + 1) / m
        psi = stats.psi(col.psi_shares, shares.astype(np.float64))
    tests = {
        "ks": _stat(ks.statistic, ks.p_value, ks.statistic),
        "rank-sum": _stat(rs.statistic, rs.p_value, abs(auc_shift)),
    }
    shifts: tuple[ShareShift, ...] = ()
    if "point-mass" in budget:
        held = ranks.right - ranks.left
        at_atom = held >= atom_threshold(n)
        win = {atom_key(v): int(c) for v, c in zip(ranks.values[at_atom], ranks.counts[at_atom], strict=True)}
        # Values the reference never held are the "new" cell (a shifted count or rounded column lands
        # there), judged against the Good-Turing unseen mass; the rest of the seen values stay untested.
        win[NEW] = int(ranks.counts[held == 0].sum())
        win["rest"] = m - sum(win.values())
        pm = cell_test(
            col.atom_counts, win, budget["point-mass"], untested=_REST, singletons=stats.singletons(col.sorted_values)
        )
        tests["point-mass"] = _stat(pm.statistic, pm.p_value, pm.statistic)
        shifts = _shifts(pm.cells)
    return tests, psi, shifts


def _rank(hit: bool, p_adj: float) -> tuple[bool, float]:
    return (not hit, p_adj if math.isfinite(p_adj) else 2.0)


def _categorical_tests(
    col: ColumnProfile, win: dict[str, int], budget: dict[str, float]
) -> tuple[dict[str, TestStat], float | None, float, tuple[ShareShift, ...]]:
    chi = stats.chi2_pooled(col.category_counts, win)
    n, m = sum(col.category_counts.values()), sum(win.values())
    psi = tvd = math.nan
    if n and m:
        keys = sorted(set(col.category_counts) | set(win))
        r = np.array([col.category_counts.get(k, 0) for k in keys], dtype=np.float64) / n
        w = np.array([win.get(k, 0) for k in keys], dtype=np.float64) / m
        psi, tvd = stats.psi(r, w), float(0.5 * np.abs(r - w).sum())
    cells = cell_test(col.category_counts, win, budget["cells"])
    tests = {
        "chi2": _stat(chi.statistic, chi.p_value, tvd),
        "cells": _stat(cells.statistic, cells.p_value, cells.statistic),
    }
    return tests, _finite(psi), chi.new_category_share, _shifts(cells.cells)


def _performance(perf: PerformanceProfile, window: pd.DataFrame) -> tuple[TestStat, dict[str, float], int]:
    y, p = window[perf.label], window[perf.prediction]
    if perf.task == "regression":
        errs = abs_errors(y, p)
        rs = stats.rank_sum_sorted(perf.abs_errors_sorted, perf.abs_errors_tie_term, errs)
        one_sided = float(sps.norm.sf(rs.statistic)) if math.isfinite(rs.statistic) else math.nan
        mae = float(errs.mean()) if errs.size else math.nan
        drop = (mae - perf.metrics.get("mae", math.nan)) / max(perf.metrics.get("mae", 1.0), 1e-12)
        return (_stat(rs.statistic, one_sided, drop), performance_metrics("regression", y, p), int(errs.size))
    flags = correct_flags(y, p)
    m = int(flags.size)
    if m == 0 or perf.rows == 0:
        return TestStat(statistic=None, p_value=None, effect=None), {}, 0
    correct = int(flags.sum())
    table = [[correct, m - correct], [perf.correct, perf.rows - perf.correct]]
    pv = float(sps.fisher_exact(table, alternative="less").pvalue)
    drop = perf.correct / perf.rows - correct / m
    return (TestStat(statistic=drop, p_value=pv, effect=drop), performance_metrics("classification", y, p), m)


_FLOORS = {
    "ks": MIN_KS,
    "rank-sum": MIN_AUC_SHIFT,
    "chi2": MIN_TVD,
    "cells": MIN_CELL_SHIFT,
    "point-mass": MIN_CELL_SHIFT,
    "missing-rate": MIN_MISSING_DIFF,
    "performance": MIN_PERF_DROP,
}


def _column_budget(col: ColumnProfile, share: float, alpha: float) -> dict[str, float]:
    """The part of ``alpha`` each test of ``col`` may spend (its column holds ``share`` of it)."""
    names = (
        ["rank-sum", "ks", "missing-rate"] + (["point-mass"] if col.atom_counts else [])
        if col.kind == "numeric"
        else ["cells", "chi2", "missing-rate"]
    )
    return {t: alpha * share * w for t, w in budget.test_weights(col.kind, names).items()}


_Partial = tuple[ColumnProfile, dict[str, TestStat], float | None, float | None, float, tuple[ShareShift, ...]]


def test_window(
    profile: ReferenceProfile, window: pd.DataFrame, *, alpha: float = DEFAULT_ALPHA, min_effect: bool = True
) -> DriftResult:
    """Test every profiled column of ``window`` (and model performance when labels exist).

    Per column: numeric -> Mann-Whitney rank-sum (location), two-sample KS
    (shape) and, when the reference has point masses (zeros, counts, rounded
    values), exact per-value tests of their shares; categorical -> exact
    per-category tests (a rare or unseen category's surge counts on its own,
    :mod:`aiopsd.detectors.drift.cells`) and a pooled chi-squared test (many
    small moves); both -> exact one-sided tests of the missing rate (Tarone over
    its rise and fall, :func:`aiopsd.detectors.drift.cells.missing_test`). PSI is the
    effect size columns are ranked by.

    Multiple testing: weighted Bonferroni (:mod:`aiopsd.detectors.drift.budget`),
    an equal share of ``alpha`` per column, split inside the column by the
    tests' power. It bounds the family-wise error rate, the probability that a
    no-drift window names any column, by ``alpha``.

    A test counts as drift when its adjusted p-value is ``<= alpha`` and, with
    ``min_effect``, its effect is at least the module's floor (``MIN_KS`` ...).
    Columns missing from the window are reported with ``test="none"``.
    Pure: no I/O, no clock; cost linear in window rows (plus ``m log m``).
    """
    perf = profile.performance
    has_perf = perf is not None and perf.label in window.columns and perf.prediction in window.columns
    present = [n for n in profile.columns if n in window.columns]
    share = 1.0 / max(len(present) + int(has_perf), 1)
    raw: list[tuple[str, str, TestStat, float]] = []
    partial: dict[str, _Partial] = {}
    for name, col in profile.columns.items():
        if name not in window.columns:
            partial[name] = (col, {}, None, None, math.nan, ())
            continue
        s = window[name]
        spend = _column_budget(col, share, alpha)
        new_share: float | None = None
        if col.kind == "numeric":
            vals = numeric_values(s)
            tests, psi, shifts = _numeric_tests(col, vals, spend)
            win_missing = len(s) - vals.size
        else:
            counts = category_counts(s)
            tests, psi, ns, shifts = _categorical_tests(col, counts, spend)
            new_share = _finite(ns)
            win_missing = len(s) - sum(counts.values())
        diff, p_missing = missing_test(col.missing, col.total, win_missing, len(s), spend["missing-rate"])
        tests["missing-rate"] = _stat(diff, p_missing, abs(diff))
        partial[name] = (col, tests, psi, new_share, win_missing / len(s) if len(s) else math.nan, shifts)
        raw.extend((name, t, ts, spend[t] / alpha) for t, ts in tests.items())

    perf_raw: tuple[TestStat, dict[str, float], int] | None = None
    if perf is not None and has_perf:
        perf_raw = _performance(perf, window)
        if perf_raw[2] > 0:
            raw.append(("__performance__", "performance", perf_raw[0], share))

    log_alpha = math.log(alpha)

    def is_hit(test: str, ts: TestStat, a: float) -> bool:
        if not math.isfinite(a) or a > alpha:
            return False
        return not min_effect or (ts.effect is not None and ts.effect >= _FLOORS.get(test, 0.0))

    best: dict[str, tuple[float, str, TestStat, bool]] = {}
    score = 0.0
    for name, test, ts, weight in raw:
        a = math.nan if ts.p_value is None else min(1.0, ts.p_value / weight)
        hit = is_hit(test, ts, a)
        if math.isfinite(a):
            s_val = math.log(max(a, 1e-300)) / log_alpha
            score = max(score, s_val if hit else min(s_val, 0.999))
        # A column reports its strongest test: a hit before a miss, then the smallest adjusted p.
        cur = best.get(name)
        if cur is None or _rank(hit, a) < _rank(cur[3], cur[0]):
            best[name] = (a, test, ts, hit)

    columns: dict[str, ColumnDrift] = {}
    for name, (col, tests, psi, new_share, win_rate, shifts) in partial.items():
        chosen = best.get(name)
        columns[name] = ColumnDrift(
            name=name,
            kind=col.kind,
            role=col.role,
            test=cast(Test, chosen[1]) if chosen else "none",
            statistic=chosen[2].statistic if chosen else None,
            p_value=_finite(chosen[0]) if chosen else None,
            psi=psi,
            drift=bool(chosen and chosen[3]),
            missing_rate_reference=col.missing / col.total if col.total else 0.0,
            missing_rate_window=win_rate if math.isfinite(win_rate) else 0.0,
            new_category_share=new_share,
            tests=tests,
            shifts=shifts,
        )

    perf_out = None
    if perf is not None and perf_raw is not None and perf_raw[2] > 0:
        chosen = best["__performance__"]
        test_name: Literal["rank-sum", "fisher"] = "rank-sum" if perf.task == "regression" else "fisher"
        perf_out = PerformanceDrift(
            task=perf.task,
            test=test_name,
            statistic=perf_raw[0].statistic,
            p_value=_finite(chosen[0]),
            drift=chosen[3],
            rows=perf_raw[2],
            reference=dict(perf.metrics),
            window=perf_raw[1],
        )
    drifted = tuple(n for n, c in columns.items() if c.drift)
    any_drift = bool(drifted) or bool(perf_out and perf_out.drift)
    return DriftResult(
        drift=any_drift,
        score=score if any_drift else min(score, 0.999),
        alpha=alpha,
        rows=len(window),
        drifted=drifted,
        columns=columns,
        performance=perf_out,
    )


test_window.__test__ = False  # type: ignore[attr-defined]
