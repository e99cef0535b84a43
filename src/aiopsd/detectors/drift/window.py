"""Test one window against a reference profile: :func:`test_window` -> :class:`DriftResult`."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats as sps

from aiopsd.detectors.drift import stats
from aiopsd.detectors.drift.profile import (
    ColumnProfile,
    PerformanceProfile,
    ReferenceProfile,
    abs_errors,
    category_counts,
    correct_flags,
    numeric_values,
    performance_metrics,
)
from aiopsd.detectors.drift.stats import FloatArray

DEFAULT_ALPHA = 0.005
"""Family-wise error rate per window (Holm over every test of every column).

Chosen so that a stream of no-drift windows raises a false alarm in at most
0.5 % of windows in theory; ties in real data make KS conservative, so the
measured rate is lower (see ``bench/drift.py`` and docs/ml-monitoring.md).
"""

MIN_KS = 0.05
MIN_AUC_SHIFT = 0.025
MIN_TVD = 0.05
MIN_MISSING_DIFF = 0.01
MIN_PERF_DROP = 0.0
"""Effect-size floors. A significant test only counts as drift when its effect is
at least this big. At 100-row windows significance alone implies larger effects,
so the floors never bind there; on 100,000-row windows they stop alerts on
differences too small to matter (e.g. a 0.01-std mean shift)."""

Test = Literal["ks", "rank-sum", "chi2", "missing-rate", "none"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TestStat(_Frozen):
    """One raw test: statistic, unadjusted p-value and the effect size it is judged on."""

    __test__ = False  # not a pytest class

    statistic: float | None
    p_value: float | None
    effect: float | None


class ColumnDrift(_Frozen):
    """The verdict for one column. ``p_value`` is Holm-adjusted across the whole window."""

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


class PerformanceDrift(_Frozen):
    """Model quality in the window vs the reference (only when the window has labels)."""

    task: Literal["regression", "classification"]
    test: Literal["rank-sum", "fisher"]
    statistic: float | None
    p_value: float | None
    drift: bool
    rows: int
    reference: dict[str, float]
    window: dict[str, float]


class DriftResult(_Frozen):
    """Outcome of one window. ``score >= 1`` exactly when ``drift`` (the anomaly-score convention)."""

    drift: bool
    score: float
    alpha: float
    rows: int
    drifted: tuple[str, ...]
    columns: dict[str, ColumnDrift]
    performance: PerformanceDrift | None = None

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
            change = ", ".join(f"{k} {p.reference.get(k, math.nan):.3g}->{v:.3g}"
                               for k, v in p.window.items())
            parts.append(f"performance ({change})")
        return (f"drift in {len(self.drifted)} of {len(self.columns)} columns"
                f"{' and performance' if self.performance and self.performance.drift else ''}"
                f" ({self.rows} rows): " + "; ".join(parts))


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _numeric_tests(col: ColumnProfile, vals: FloatArray) -> tuple[dict[str, TestStat], float | None]:
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
    return ({"ks": TestStat(statistic=_finite(ks.statistic), p_value=_finite(ks.p_value),
                            effect=_finite(ks.statistic)),
             "rank-sum": TestStat(statistic=_finite(rs.statistic), p_value=_finite(rs.p_value),
                                  effect=_finite(abs(auc_shift)))}, psi)


def _rank(hit: bool, p_adj: float) -> tuple[bool, float]:
    return (not hit, p_adj if math.isfinite(p_adj) else 2.0)


def _categorical_tests(col: ColumnProfile, win: dict[str, int]
                       ) -> tuple[dict[str, TestStat], float | None, float]:
    chi = stats.chi2_pooled(col.category_counts, win)
    n, m = sum(col.category_counts.values()), sum(win.values())
    psi = tvd = None
    if n and m:
        keys = sorted(set(col.category_counts) | set(win))
        r = np.array([col.category_counts.get(k, 0) for k in keys], dtype=np.float64) / n
        w = np.array([win.get(k, 0) for k in keys], dtype=np.float64) / m
        psi, tvd = stats.psi(r, w), float(0.5 * np.abs(r - w).sum())
    return ({"chi2": TestStat(statistic=_finite(chi.statistic), p_value=_finite(chi.p_value), effect=tvd)},
            psi, chi.new_category_share)


def _performance(perf: PerformanceProfile, window: pd.DataFrame) -> tuple[TestStat, dict[str, float], int]:
    y, p = window[perf.label], window[perf.prediction]
    if perf.task == "regression":
        errs = abs_errors(y, p)
        rs = stats.rank_sum_sorted(perf.abs_errors_sorted, perf.abs_errors_tie_term, errs)
        one_sided = float(sps.norm.sf(rs.statistic)) if math.isfinite(rs.statistic) else math.nan
        mae = float(errs.mean()) if errs.size else math.nan
        drop = (mae - perf.metrics.get("mae", math.nan)) / max(perf.metrics.get("mae", 1.0), 1e-12)
        return (TestStat(statistic=_finite(rs.statistic), p_value=_finite(one_sided), effect=_finite(drop)),
                performance_metrics("regression", y, p), int(errs.size))
    flags = correct_flags(y, p)
    m = int(flags.size)
    if m == 0 or perf.rows == 0:
        return TestStat(statistic=None, p_value=None, effect=None), {}, 0
    correct = int(flags.sum())
    table = [[correct, m - correct], [perf.correct, perf.rows - perf.correct]]
    pv = float(sps.fisher_exact(table, alternative="less").pvalue)
    drop = perf.correct / perf.rows - correct / m
    return (TestStat(statistic=drop, p_value=pv, effect=drop),
            performance_metrics("classification", y, p), m)


_FLOORS = {"ks": MIN_KS, "rank-sum": MIN_AUC_SHIFT, "chi2": MIN_TVD, "missing-rate": MIN_MISSING_DIFF}


def test_window(profile: ReferenceProfile, window: pd.DataFrame, *, alpha: float = DEFAULT_ALPHA,
                min_effect: bool = True) -> DriftResult:
    """Test every profiled column of ``window`` (and model performance when labels exist).

    Per column: numeric -> two-sample KS (shape) and Mann-Whitney rank-sum
    (location, far more powerful for a mean shift in 100 rows) on the finite
    values; categorical -> chi-squared with rare-cell pooling (unseen categories
    land in the "other" cell and are reported as ``new_category_share``); both ->
    Fisher's exact test on the missing rate. PSI is reported as an effect size.

    Multiple testing: Holm's step-down correction over *all* tests of the
    window (including performance). Holm controls the family-wise error rate, the
    probability that a no-drift window names any column, which is what an alert
    per window needs; Benjamini-Hochberg only controls the share of false
    columns among flagged ones and would name more bystander columns. Under the
    global null both flag a window exactly when ``min p <= alpha / k``.

    A test counts as drift when its adjusted p-value is ``<= alpha`` and, with
    ``min_effect``, its effect is at least the module's floor (``MIN_KS`` ...).
    Columns missing from the window are reported with ``test="none"``.
    Pure: no I/O, no clock; cost linear in window rows (plus ``m log m``).
    """
    raw: list[tuple[str, str, TestStat]] = []
    partial: dict[str, tuple[ColumnProfile, dict[str, TestStat], float | None, float | None, float]] = {}
    for name, col in profile.columns.items():
        if name not in window.columns:
            partial[name] = (col, {}, None, None, math.nan)
            continue
        s = window[name]
        if col.kind == "numeric":
            vals = numeric_values(s)
            tests, psi = _numeric_tests(col, vals)
            new_share: float | None = None
            win_missing = len(s) - vals.size
        else:
            counts = category_counts(s)
            tests, psi, ns = _categorical_tests(col, counts)
            new_share = _finite(ns)
            win_missing = len(s) - sum(counts.values())
        mt = stats.missing_rate_test(col.missing, col.total, win_missing, len(s))
        tests["missing-rate"] = TestStat(statistic=_finite(mt.statistic), p_value=_finite(mt.p_value),
                                         effect=_finite(abs(mt.statistic)))
        partial[name] = (col, tests, psi, new_share, win_missing / len(s) if len(s) else math.nan)
        raw.extend((name, t, ts) for t, ts in tests.items())

    perf_raw: tuple[TestStat, dict[str, float], int] | None = None
    perf = profile.performance
    if perf is not None and perf.label in window.columns and perf.prediction in window.columns:
        perf_raw = _performance(perf, window)
        if perf_raw[2] > 0:
            raw.append(("__performance__", "performance", perf_raw[0]))

    p = np.array([np.nan if ts.p_value is None else ts.p_value for _, _, ts in raw])
    adj = stats.holm(p)
    log_alpha = math.log(alpha)

    def is_hit(test: str, ts: TestStat, a: float) -> bool:
        if not math.isfinite(a) or a > alpha:
            return False
        floor = MIN_PERF_DROP if test == "performance" else _FLOORS.get(test, 0.0)
        return not min_effect or (ts.effect is not None and ts.effect >= floor)

    best: dict[str, tuple[float, str, TestStat, bool]] = {}
    score = 0.0
    for (name, test, ts), a in zip(raw, adj, strict=True):
        hit = is_hit(test, ts, float(a))
        if math.isfinite(a):
            s_val = math.log(max(float(a), 1e-300)) / log_alpha
            score = max(score, s_val if hit else min(s_val, 0.999))
        # A column reports its strongest test: a hit before a miss, then the smallest adjusted p.
        cur = best.get(name)
        if cur is None or _rank(hit, float(a)) < _rank(cur[3], cur[0]):
            best[name] = (float(a), test, ts, hit)

    columns: dict[str, ColumnDrift] = {}
    for name, (col, tests, psi, new_share, win_rate) in partial.items():
        chosen = best.get(name)
        columns[name] = ColumnDrift(
            name=name, kind=col.kind, role=col.role,
            test=chosen[1] if chosen else "none",
            statistic=chosen[2].statistic if chosen else None,
            p_value=_finite(chosen[0]) if chosen else None,
            psi=psi, drift=bool(chosen and chosen[3]),
            missing_rate_reference=col.missing / col.total if col.total else 0.0,
            missing_rate_window=win_rate if math.isfinite(win_rate) else 0.0,
            new_category_share=new_share, tests=tests)

    perf_out = None
    if perf is not None and perf_raw is not None and perf_raw[2] > 0:
        chosen = best["__performance__"]
        test_name: Literal["rank-sum", "fisher"] = "rank-sum" if perf.task == "regression" else "fisher"
        perf_out = PerformanceDrift(task=perf.task, test=test_name,
                                    statistic=perf_raw[0].statistic, p_value=_finite(chosen[0]),
                                    drift=chosen[3], rows=perf_raw[2], reference=dict(perf.metrics),
                                    window=perf_raw[1])
    drifted = tuple(n for n, c in columns.items() if c.drift)
    any_drift = bool(drifted) or bool(perf_out and perf_out.drift)
    return DriftResult(drift=any_drift, score=score if any_drift else min(score, 0.999), alpha=alpha,
                       rows=len(window), drifted=drifted, columns=columns, performance=perf_out)


test_window.__test__ = False  # type: ignore[attr-defined]
