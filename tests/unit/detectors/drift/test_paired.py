from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopsd.detectors.drift.paired import bootstrap_mean, compare, metric_value, regressed, row_scores


def test_row_scores_average_to_the_metric() -> None:
    y = np.array([1, 0, 1, 1])
    assert row_scores("accuracy", y, np.array([1, 1, 1, 0])).mean() == 0.5
    yr, pr = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 2.0])
    assert metric_value("mae", float(row_scores("mae", yr, pr).mean())) == pytest.approx(1.0)
    assert metric_value("mse", float(row_scores("mse", yr, pr).mean())) == pytest.approx(5 / 3)


def test_a_clearly_better_challenger_wins_and_a_tie_does_not() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    champion = np.where(rng.random(2000) < 0.70, y, 1 - y)  # ~70 % right
    challenger = np.where(rng.random(2000) < 0.85, y, 1 - y)  # ~85 % right
    better = compare(
        "accuracy", row_scores("accuracy", y, champion), row_scores("accuracy", y, challenger), confidence=0.95
    )
    assert better.rows == 2000 and better.advantage.low > 0.1 and better.wins_by(0.05)
    assert better.challenger - better.champion == pytest.approx(better.advantage.mean)
    same = np.where(rng.permutation(champion == y), y, 1 - y)  # as often right, on other rows
    tie = compare("accuracy", row_scores("accuracy", y, champion), row_scores("accuracy", y, same), confidence=0.95)
    assert tie.advantage.low < 0 < tie.advantage.high and not tie.wins_by(0.0)


def test_few_rows_give_a_wide_interval_that_refuses_a_point_estimate_win() -> None:
    y = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1])
    champion = np.array([1, 0, 0, 0, 1, 1, 1, 1, 0, 0])  # 7/10
    challenger = y.copy()  # 10/10: +0.3 as a point estimate
    c = compare("accuracy", row_scores("accuracy", y, champion), row_scores("accuracy", y, challenger), confidence=0.95)
    assert c.advantage.mean == pytest.approx(0.3)
    assert not c.wins_by(0.2)  # the lower bound is far below the point estimate


def test_regression_metrics_compare_in_metric_units() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=3000)
    champion = y + rng.normal(scale=1.0, size=3000)
    challenger = y + rng.normal(scale=0.5, size=3000)
    c = compare("mae", row_scores("mae", y, champion), row_scores("mae", y, challenger), confidence=0.9)
    assert c.champion == pytest.approx(np.abs(y - champion).mean())
    assert c.advantage.mean == pytest.approx(c.champion - c.challenger) and c.wins_by(0.3)


def test_bootstrap_is_deterministic_for_a_seed_and_ignores_non_finite_rows() -> None:
    v = np.r_[np.random.default_rng(3).normal(size=500), np.nan, np.inf]
    a, b = bootstrap_mean(v, confidence=0.95, seed=7), bootstrap_mean(v, confidence=0.95, seed=7)
    assert a == b and a.rows == 500 and a.low < a.mean < a.high
    empty = bootstrap_mean(np.array([]), confidence=0.95)
    assert empty.rows == 0 and np.isnan(empty.mean)
    assert not compare("accuracy", np.array([]), np.array([]), confidence=0.95).wins_by(0.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=2, max_size=300), st.floats(0.6, 0.99))
def test_the_interval_holds_the_mean_and_lies_within_the_data(values: list[float], confidence: float) -> None:
    b = bootstrap_mean(np.array(values), confidence=confidence)
    assert min(values) - 1e-9 <= b.low <= b.mean + 1e-9 and b.mean - 1e-9 <= b.high <= max(values) + 1e-9


def test_regressed_needs_the_upper_bound_below_the_baseline_minus_margin() -> None:
    rng = np.random.default_rng(4)
    bad = (rng.random(400) < 0.6).astype(float)  # ~60 % right
    hit, bound = regressed(bad, baseline=0.9, margin=0.05, confidence=0.95)
    assert hit and bound.high < 0.85
    fine = (rng.random(400) < 0.88).astype(float)
    assert not regressed(fine, baseline=0.9, margin=0.05, confidence=0.95)[0]


def test_compare_refuses_unpaired_rows() -> None:
    with pytest.raises(ValueError, match="same rows"):
        compare("accuracy", np.zeros(3), np.zeros(4), confidence=0.95)
