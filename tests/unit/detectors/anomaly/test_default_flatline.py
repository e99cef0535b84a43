"""The flat-line view of the seasonal detectors: a moving series that stops moving is reported once."""

from __future__ import annotations

import numpy as np

from aiopsd.detectors.anomaly import make_detector


def _scores(values: np.ndarray, **params: int) -> np.ndarray:
    t = np.arange(values.size, dtype=np.float64) * 300.0
    det = make_detector("decompose", **params).fit(t[:0], values[:0])
    return det.score(t, values).anomaly_score


def _wave(n: int = 4000) -> np.ndarray:
    rng = np.random.default_rng(1)
    return 10 + 3 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 0.3, n)


def test_a_flat_line_in_a_moving_series_alerts_once_after_flat_after_points() -> None:
    v = _wave()
    v[2500:2700] = v[2499]
    assert not (_scores(v) >= 1).any(), "without the view the flat line passes unnoticed"
    hits = np.flatnonzero(_scores(v, flat_after=12) >= 1)
    assert hits.tolist() == [2510]  # the 12th equal point (the run starts at 2499)


def test_constant_and_naturally_repetitive_series_do_not_alert() -> None:
    assert not (_scores(np.full(3000, 5.0), flat_after=12) >= 1).any()
    # Idle hours of a queue: runs of zeros as long as 40 points are normal for it.
    v = np.tile(np.r_[np.zeros(40), np.arange(1.0, 249.0) % 7 + 1], 12)
    np.testing.assert_array_equal(_scores(v, flat_after=12) >= 1, _scores(v) >= 1)
