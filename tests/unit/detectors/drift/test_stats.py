"""The per-cell, point-mass and budget mechanisms: power where pooling and Holm lost it, no false alarms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from aiopsd.detectors import drift
from aiopsd.detectors.drift import budget, cells
from aiopsd.detectors.drift.stats import chi2_pooled


def _zipf(rng: np.random.Generator, k: int, size: int) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** 1.1
    return np.array([f"ap{i}" for i in rng.choice(k, size=size, p=w / w.sum())], dtype=object)


def test_rare_category_surge_is_found_where_pooled_chi2_misses_it() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"airport": _zipf(rng, 400, 2000)})
    prof = drift.profile_reference(ref)
    counts = ref["airport"].value_counts()
    rare = str(counts.index[counts.to_numpy() <= 3][0])
    found = pooled = 0
    for _ in range(40):
        win = pd.DataFrame({"airport": _zipf(rng, 400, 100)})
        win.loc[rng.choice(100, size=10, replace=False), "airport"] = rare
        found += drift.test_window(prof, win).drift
        win_counts = {str(k): int(v) for k, v in win["airport"].value_counts().items()}
        p = chi2_pooled(prof.columns["airport"].category_counts, win_counts)
        pooled += p.p_value <= drift.DEFAULT_ALPHA
    assert found == 40
    assert pooled < 30  # the rare cell is pooled away


def test_high_cardinality_column_has_no_false_alarms() -> None:
    rng = np.random.default_rng(4)
    prof = drift.profile_reference(pd.DataFrame({"airport": _zipf(rng, 400, 2000)}))
    flagged = sum(drift.test_window(prof, pd.DataFrame({"airport": _zipf(rng, 400, 100)})).drift for _ in range(200))
    assert flagged <= 4  # alpha 0.01 -> 2 expected at most


def test_fisher_cells_match_scipy() -> None:
    ref = np.array([50.0, 45.0, 5.0])
    win = np.array([5.0, 4.0, 3.0])
    ours = cells.fisher_cells(ref, win, 100, 12)
    for i in range(3):
        table = [[win[i], 12 - win[i]], [ref[i], 100 - ref[i]]]
        lo = sps.fisher_exact(table, alternative="less").pvalue
        hi = sps.fisher_exact(table, alternative="greater").pvalue
        assert ours[i] == pytest.approx(min(1.0, 2 * min(lo, hi)))


def test_tarone_counts_only_cells_that_can_reject() -> None:
    # Cells that can reach 1e-6 and many that cannot get below 0.5: only the first count.
    p_min = np.array([1e-6, 1e-7] + [0.5] * 300)
    assert cells.tarone_k(p_min, 0.01) == 2


def test_zero_inflated_shift_is_seen_by_point_masses() -> None:
    rng = np.random.default_rng(5)

    def rain(n: int) -> np.ndarray:
        return np.where(rng.random(n) < 0.65, 0.0, np.round(rng.gamma(0.8, 6.0, n), 1))

    ref = pd.DataFrame({"precip": rain(2000)})
    prof = drift.profile_reference(ref)
    assert "0.0" in prof.columns["precip"].atom_counts
    win = pd.DataFrame({"precip": rain(100) + 0.5 * ref["precip"].std()})
    res = drift.test_window(prof, win)
    assert res.drifted == ("precip",)
    # The explanation names the point mass that emptied.
    assert any(s.value == "0.0" and s.window_share == 0.0 for s in res.columns["precip"].shifts)


def test_top_category_explanation_shows_gain_and_loss() -> None:
    rng = np.random.default_rng(6)
    ref = pd.DataFrame({"plan": rng.choice(["free", "basic", "pro"], 2000, p=[0.7, 0.295, 0.005])})
    prof = drift.profile_reference(ref)
    win = pd.DataFrame({"plan": rng.choice(["free", "basic", "pro"], 100, p=[0.35, 0.3, 0.35])})
    res = drift.test_window(prof, win)
    col = res.columns["plan"]
    assert col.drift and res.ranked()[0].name == "plan"
    moved = {s.value: s.window_share - s.reference_share for s in col.shifts}
    assert moved["pro"] > 0.2 and moved["free"] < -0.2


def test_budget_weights_sum_to_one_over_applicable_tests() -> None:
    w = budget.test_weights("numeric", ["rank-sum", "ks", "missing-rate"])
    assert sum(w.values()) == pytest.approx(1.0) and "point-mass" not in w
    # Renormalised over the applicable tests (the point-mass share goes to the others), rank-sum first.
    raw = {t: budget.NUMERIC_WEIGHTS[t] for t in ("rank-sum", "ks", "missing-rate")}
    assert w == pytest.approx({t: v / sum(raw.values()) for t, v in raw.items()})
    assert w["rank-sum"] > max(w["ks"], w["missing-rate"])


def test_one_sided_cells_give_a_rare_cell_the_whole_share() -> None:
    # A cell with 2 of 2,000 reference rows can only rise significantly: its fall is not a test, so its
    # rise is judged at alpha / K, where a two-sided test would have been judged at half of it.
    ref = {"common": 1998, "rare": 2}
    win = {"common": 94, "rare": 6}
    out = cells.cell_test(ref, win, 0.01)
    rare = next(c for c in out.cells if c.key == "rare")
    upper = sps.hypergeom.sf(6 - 1, 2100, 8, 100)
    assert rare.p_value == pytest.approx(upper)
    two_sided = cells.fisher_cells(np.array([2.0]), np.array([6.0]), 2000, 100)[0]
    assert rare.p_value < two_sided


def test_missing_test_is_exact_for_small_windows() -> None:
    # No missing value in the reference: one missing value cannot be significant (its smallest attainable
    # p, m/(n+m), is above alpha), three are judged by the exact hypergeometric upper tail alone.
    diff, p = cells.missing_test(0, 2000, 1, 100, 0.01)
    assert diff == pytest.approx(0.01) and p == 1.0
    _, p3 = cells.missing_test(0, 2000, 3, 100, 0.01)
    assert p3 == pytest.approx(sps.hypergeom.pmf(3, 2100, 3, 100))
    _, p20 = cells.missing_test(0, 2000, 20, 100, 0.01)
    assert p20 < 1e-20
    # Under the null, in 30-row windows at a 10 % missing rate, it rejects at most alpha of the time.
    rng = np.random.default_rng(8)
    ref_missing = int(rng.binomial(2000, 0.1))
    rejected = sum(
        cells.missing_test(ref_missing, 2000, int(rng.binomial(30, 0.1)), 30, 0.01)[1] <= 0.01 for _ in range(2000)
    )
    assert rejected <= 20


def test_cell_false_alarm_rate_under_the_null_stays_below_alpha() -> None:
    # Exact per-cell tests with one-sided Tarone on a long-tailed column, windows from the reference law.
    rng = np.random.default_rng(9)
    w = 1.0 / np.arange(1, 301) ** 0.9
    keys = np.array([f"v{i}" for i in range(300)], dtype=object)
    ref_draw = rng.choice(keys, size=2000, p=w / w.sum())
    ref = {str(k): int(c) for k, c in zip(*np.unique(ref_draw, return_counts=True), strict=True)}
    hits = 0
    for _ in range(600):
        win_draw = rng.choice(keys, size=100, p=w / w.sum())
        win = {str(k): int(c) for k, c in zip(*np.unique(win_draw, return_counts=True), strict=True)}
        hits += cells.cell_test(ref, win, 0.01).p_value <= 0.01
    assert hits <= 12  # 6 expected at alpha 0.01; Bonferroni-Tarone keeps it below


# derandomize: each example is a Monte Carlo estimate of a false-alarm rate near 1 %, and a fresh
# random draw of examples every run made the bound fail about once in twenty runs by chance alone
# (seen under pytest-xdist); a scan of 440 (levels, seed) pairs gave at most 5 of 150, mean 0.7 %.
@settings(max_examples=6, deadline=None, derandomize=True)
@given(levels=st.integers(min_value=2, max_value=12), seed=st.integers(min_value=0, max_value=2**16))
def test_heavily_tied_column_does_not_inflate_false_alarms(levels: int, seed: int) -> None:
    # A column with a handful of distinct values (every value a point mass, ties everywhere):
    # rank-sum with tie correction, KS and the point-mass cells together stay at the family-wise alpha.
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(levels))
    values = np.round(rng.normal(size=levels) * 10, 1)

    def draw(n: int) -> pd.DataFrame:
        return pd.DataFrame({"x": rng.choice(values, size=n, p=p)})

    prof = drift.profile_reference(draw(2000))
    flagged = sum(drift.test_window(prof, draw(100)).drift for _ in range(150))
    assert flagged <= 5  # 1.5 expected at alpha 0.01


def test_values_off_the_reference_grid_fill_the_new_cell() -> None:
    # A year column: every value a point mass. Shifted by a fraction of a year, no window value is one
    # the reference held; the rank-sum alone sees little of a small shift, the "new values" cell sees it.
    rng = np.random.default_rng(10)
    prof = drift.profile_reference(pd.DataFrame({"year": rng.integers(1960, 2014, 2000).astype(float)}))
    win = pd.DataFrame({"year": rng.integers(1960, 2014, 100) + 0.4})
    col = drift.test_window(prof, win).columns["year"]
    assert col.drift and col.test == "point-mass"
    assert any(s.value == cells.NEW and s.window_share == 1.0 for s in col.shifts)


def test_new_values_cell_does_not_alarm_on_large_windows_of_a_mixed_column() -> None:
    # Half zeros, half continuous: the window's share of never-seen values matches the Good-Turing mass
    # (~0.5), whose estimation error a 100,000-row window resolves; the effect floor on the excess holds.
    rng = np.random.default_rng(11)

    def draw(n: int) -> pd.DataFrame:
        return pd.DataFrame({"x": np.where(rng.random(n) < 0.5, 0.0, rng.normal(size=n))})

    prof = drift.profile_reference(draw(10_000))
    assert sum(drift.test_window(prof, draw(100_000)).drift for _ in range(5)) == 0
