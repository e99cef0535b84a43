"""The per-cell, point-mass and budget mechanisms: power where pooling and Holm lost it, no false alarms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
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
    flagged = sum(drift.test_window(prof, pd.DataFrame({"airport": _zipf(rng, 400, 100)})).drift
                  for _ in range(200))
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
    assert w["rank-sum"] > w["ks"] > w["missing-rate"]
