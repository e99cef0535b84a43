"""The fast MAD detector gives the textbook rolling median / MAD scores."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopsd.detectors.anomaly.mad import MADDetector, _kth_distance

values = st.lists(st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, 1.0, 2.0])), min_size=1, max_size=60)


@given(values)
def test_kth_distance_is_the_kth_smallest_absolute_deviation(xs: list[float]) -> None:
    s = sorted(xs)
    med = float(np.median(s))
    expected = sorted(abs(x - med) for x in s)
    assert [_kth_distance(s, med, k) for k in range(len(s))] == expected


@settings(max_examples=30, deadline=None)  # no wall-clock assertion on a shared machine
@given(st.lists(st.floats(-1e3, 1e3), min_size=20, max_size=120), st.integers(2, 30))
def test_scores_match_a_numpy_reference(xs: list[float], window: int) -> None:
    det = MADDetector(window=window, min_periods=2).fit(np.empty(0), np.empty(0))
    for i, x in enumerate(xs):
        got = det.update(float(i), x)
        hist = np.array(xs[max(0, i - window) : i])
        if hist.size < 2:
            assert got.anomaly_score == 0.0
            continue
        med = float(np.median(hist))
        scale = max(1.4826 * float(np.median(np.abs(hist - med))), 1e-9, 1e-6 * abs(med))
        expected = min(abs(x - med) / (3.5 * scale), 1e9)
        assert np.isclose(got.anomaly_score, expected, rtol=1e-9, atol=1e-12)
        assert np.isclose(got.yhat, med)
