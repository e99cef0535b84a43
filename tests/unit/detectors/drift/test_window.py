"""Drift tests against real bundled data (statsmodels' ``fair`` affairs survey)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from aiopsd.detectors import drift
from aiopsd.detectors.drift import stats

Split = tuple[pd.DataFrame, pd.DataFrame, drift.ReferenceProfile]
CATEGORICAL = ["occupation", "religious", "rate_marriage"]


@pytest.fixture(scope="module")
def fair() -> pd.DataFrame:
    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df: pd.DataFrame = sm.datasets.fair.load_pandas().data
    for c in CATEGORICAL:
        df[c] = df[c].astype(int).map(lambda v: f"c{v}")
    return df.sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def split(fair: pd.DataFrame) -> Split:
    ref, rest = fair.iloc[:3000], fair.iloc[3000:].reset_index(drop=True)
    return ref, rest, drift.profile_reference(ref)


def test_ks_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(1)
    ref = np.round(rng.normal(size=2000), 1)
    win = np.round(rng.normal(0.3, 1.0, size=150), 1)
    ours = stats.ks_sorted(np.sort(ref), win)
    theirs = sps.ks_2samp(ref, win, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-6)


def test_rank_sum_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(2)
    ref = np.sort(rng.integers(0, 7, size=1500).astype(np.float64))
    win = rng.integers(1, 8, size=120).astype(np.float64)
    ours = stats.rank_sum_sorted(ref, stats.tie_term(ref), win)
    theirs = sps.mannwhitneyu(win, ref, use_continuity=False, method="asymptotic")
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-6)


def test_holm_matches_statsmodels() -> None:
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.005, 0.5])
    ours = stats.holm(p)
    expected = multipletests(p[~np.isnan(p)], method="holm")[1]
    np.testing.assert_allclose(ours[~np.isnan(p)], expected)
    assert np.isnan(ours[2])


def test_same_distribution_is_not_drift(split: Split) -> None:
    _, rest, prof = split
    flagged = [drift.test_window(prof, rest.iloc[i * 100 : (i + 1) * 100]).drift for i in range(30)]
    assert sum(flagged) <= 1


def test_mean_shift_names_the_column(split: Split) -> None:
    ref, rest, prof = split
    win = rest.iloc[:100].copy()
    win["age"] = win["age"] + 0.5 * ref["age"].std()
    res = drift.test_window(prof, win)
    assert res.drift and res.score >= 1
    assert res.drifted == ("age",)
    col = res.columns["age"]
    assert col.test in {"ks", "rank-sum", "point-mass"} and col.p_value is not None and col.p_value <= res.alpha
    assert col.psi is not None and col.psi > 0.1
    assert res.summary().startswith("drift in 1 of 9 columns (100 rows): age (")


def test_unseen_category_is_drift_with_share(split: Split) -> None:
    _, rest, prof = split
    win = rest.iloc[:100].copy()
    top = win["occupation"].value_counts().index[0]
    rows = win.index[win["occupation"] == top][::2]
    win.loc[rows, "occupation"] = "brand-new"
    res = drift.test_window(prof, win)
    col = res.columns["occupation"]
    assert col.drift and col.test in {"chi2", "cells"}
    assert col.new_category_share == pytest.approx(len(rows) / 100)


def test_missing_values_are_drift(split: Split) -> None:
    _, rest, prof = split
    win = rest.iloc[:100].copy()
    win.loc[win.index[:20], "educ"] = np.nan
    win.loc[win.index[:20], "religious"] = None
    res = drift.test_window(prof, win)
    assert set(res.drifted) == {"educ", "religious"}
    assert res.columns["educ"].test == "missing-rate"
    assert res.columns["educ"].missing_rate_window == pytest.approx(0.2)


def test_missing_column_is_reported_not_crashing(split: Split) -> None:
    _, rest, prof = split
    res = drift.test_window(prof, rest.iloc[:100].drop(columns=["age"]))
    assert res.columns["age"].test == "none" and not res.columns["age"].drift


def test_large_window_tiny_shift_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(size=10_000)})
    win = pd.DataFrame({"x": rng.normal(0.08, 1.0, size=100_000)})
    prof = drift.profile_reference(ref)
    assert not drift.test_window(prof, win).drift  # effect floors: a 0.08-std shift is not worth an alert
    assert drift.test_window(prof, win, min_effect=False).drifted == ("x",)


def test_prediction_and_performance_drift_regression(fair: pd.DataFrame) -> None:
    from sklearn.linear_model import Ridge

    feats = ["age", "yrs_married", "children", "educ"]
    model = Ridge().fit(fair[feats].iloc[:2000], fair["affairs"].iloc[:2000])
    df = fair[[*feats, "affairs"]].copy()
    df["pred"] = model.predict(df[feats])
    prof = drift.profile_reference(df.iloc[2000:4000], prediction="pred", label="affairs")
    assert prof.performance is not None and prof.performance.task == "regression"
    ok = drift.test_window(prof, df.iloc[4000:4200])
    assert ok.performance is not None and not ok.performance.drift
    bad = df.iloc[4200:4400].copy()
    bad["affairs"] = bad["affairs"] + 2.0  # labels moved away from what the model predicts
    res = drift.test_window(prof, bad)
    assert res.performance is not None and res.performance.drift and res.drift
    assert res.performance.window["mae"] > res.performance.reference["mae"]
    assert res.columns["pred"].role == "prediction"


def test_performance_drift_classification(fair: pd.DataFrame) -> None:
    df = fair[["age", "rate_marriage"]].copy()
    df["label"] = np.where(fair["affairs"] > 0, "yes", "no")
    df["pred"] = df["label"]
    flip = np.random.default_rng(3).random(len(df)) < 0.1
    df.loc[flip, "pred"] = np.where(df.loc[flip, "label"] == "yes", "no", "yes")
    prof = drift.profile_reference(df.iloc[:3000], prediction="pred", label="label")
    assert prof.performance is not None and prof.performance.task == "classification"
    win = df.iloc[3000:3200].copy()
    res_ok = drift.test_window(prof, win)
    assert res_ok.performance is not None and not res_ok.performance.drift
    worse = np.random.default_rng(4).random(len(win)) < 0.3
    win.loc[worse, "pred"] = np.where(win.loc[worse, "label"] == "yes", "no", "yes")
    res = drift.test_window(prof, win)
    assert res.performance is not None and res.performance.drift
    assert res.performance.window["accuracy"] < res.performance.reference["accuracy"]
    assert "f1" in res.performance.window


def test_profile_pickles_and_result_is_json(split: Split) -> None:
    _, rest, prof = split
    again = pickle.loads(pickle.dumps(prof))
    a = drift.test_window(prof, rest.iloc[:100])
    b = drift.test_window(again, rest.iloc[:100])
    assert a == b
    assert '"columns"' in a.model_dump_json()


def test_empty_window(split: Split) -> None:
    _, rest, prof = split
    res = drift.test_window(prof, rest.iloc[:0])
    assert not res.drift and res.rows == 0


def test_binary_column_with_a_rare_value_still_tests() -> None:
    """One dominant category (98 %): pooling must not leave a single cell and silence the column."""
    rng = np.random.default_rng(6)
    ref = pd.DataFrame({"flag": np.where(rng.random(5000) < 0.02, "rare", "common")})
    prof = drift.profile_reference(ref)
    same = pd.DataFrame({"flag": np.where(rng.random(100) < 0.02, "rare", "common")})
    assert not drift.test_window(prof, same).drift
    moved = pd.DataFrame({"flag": ["rare"] * 50 + ["common"] * 50})
    res = drift.test_window(prof, moved)
    assert res.drifted == ("flag",) and res.columns["flag"].test in {"chi2", "cells"}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's own ks_2samp on 1-element samples
@settings(max_examples=60, deadline=None)
@given(
    ref=st.lists(st.integers(-5, 5), min_size=1, max_size=60), win=st.lists(st.integers(-5, 5), min_size=1, max_size=60)
)
def test_ks_statistic_matches_scipy_on_any_input(ref: list[int], win: list[int]) -> None:
    r, w = np.array(ref, dtype=np.float64), np.array(win, dtype=np.float64)
    expected = sps.ks_2samp(r, w, method="asymp").statistic
    assert stats.ks_sorted(np.sort(r), w).statistic == pytest.approx(expected)
