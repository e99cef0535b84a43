"""What the shared calibration does for a user: one alert per incident, a bar that learns the series."""

from __future__ import annotations

import numpy as np

from aiopsd.detectors.anomaly import make_detector
from aiopsd.detectors.anomaly.calibrate import Calibrator


def test_a_sustained_excursion_alerts_once_per_cooldown() -> None:
    cal = Calibrator(min_z=4.0, margin=1.5, cooldown=100, confirm=2)
    rng = np.random.default_rng(0)
    for z in np.abs(rng.normal(0, 1, 500)):
        cal(float(z))
    scores = [cal(50.0) for _ in range(150)]  # the same large deviation, point after point
    alerts = [i for i, s in enumerate(scores) if s >= 1.0]
    assert alerts[:2] == [0, 1]  # the first point and one confirming point
    assert all(s < 1.0 for s in scores[2:101])
    assert len(alerts) <= 4


def test_a_lone_outlier_reports_one_point() -> None:
    cal = Calibrator(min_z=4.0, margin=1.5, cooldown=100, confirm=2)
    for _ in range(300):
        cal(1.0)
    assert cal(50.0) >= 1.0
    assert cal(1.0) < 1.0
    assert cal(50.0) < 1.0  # inside the cooldown


def test_regular_spikes_raise_the_bar_until_they_no_longer_alert() -> None:
    cal = Calibrator(min_z=4.0, margin=1.5, cooldown=10)
    rng = np.random.default_rng(1)
    alerts_early = alerts_late = 0
    for i in range(3000):
        raw = 12.0 if i % 50 == 0 else float(abs(rng.normal()))
        hit = cal(raw) >= 1.0
        if i < 200:
            alerts_early += hit
        elif i >= 2000:
            alerts_late += hit
    assert alerts_early >= 1
    assert alerts_late == 0
    assert cal.bar() > 12.0


def test_default_reports_a_level_shift_once_then_adapts() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    values = rng.normal(10, 1, n)
    values[2000:] += 20
    t = np.arange(n, dtype=np.float64) * 60.0
    s = make_detector("default").fit(t[:1000], values[:1000]).score(t[1000:], values[1000:])
    alerts = np.flatnonzero(s.anomaly_score >= 1.0) + 1000
    assert 2000 in alerts
    assert len(alerts[alerts >= 2000]) <= 3
    assert (s.yhat[-100:] > 25).all()  # the forecast has moved to the new level
