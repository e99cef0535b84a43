"""`default`: the forecast view and the context view, one report per anomaly."""

from __future__ import annotations

import numpy as np

from aiopsd.detectors.anomaly import EnsembleDetector, make_detector


def _alerts(s_: object) -> list[int]:
    """Points that alert once the series has been streamed for 1,000 points (both views have settled)."""
    return [i for i in np.flatnonzero(s_.anomaly_score >= 1.0).tolist() if i >= 1000]  # type: ignore[attr-defined]


def _series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    season = 10 * np.sin(2 * np.pi * np.arange(n) / 288)
    return np.arange(n, dtype=np.float64) * 300.0, 50 + season + rng.normal(0, 1, n)


def test_default_is_the_ensemble() -> None:
    assert isinstance(make_detector("default"), EnsembleDetector)


def test_one_report_per_anomaly_whichever_view_fires() -> None:
    t, v = _series(3000)
    v[2000:2030] += 25.0  # both views see it: far from the forecast, at a level never seen
    s = make_detector("default").fit(t[:0], v[:0]).score(t, v)
    assert _alerts(s) == [2000, 2001]  # the first point and one confirming point (confirm 2)
    assert s.yhat_lower[1000] < s.yhat[1000] < s.yhat_upper[1000]  # the band is the forecast view's


def test_confirm_sets_how_many_points_of_a_report_get_through() -> None:
    t, v = _series(3000)
    v[2000:2030] += 25.0
    assert _alerts(make_detector("default", confirm=1).fit(t[:0], v[:0]).score(t, v)) == [2000]
    assert _alerts(make_detector("default", confirm=3).fit(t[:0], v[:0]).score(t, v)) == [2000, 2001, 2002]


def test_rest_zero_reports_both_views() -> None:
    t, v = _series(3000)
    v[2000] += 25.0
    v[2010] += 25.0
    one = _alerts(make_detector("default").fit(t[:0], v[:0]).score(t, v))
    two = _alerts(make_detector("default", rest=0, cooldown=0).fit(t[:0], v[:0]).score(t, v))
    assert one == [2000]
    assert {2000, 2010} <= set(two)
