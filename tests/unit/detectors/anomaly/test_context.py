"""The context view: surprise against learnt levels and contexts of quantised values."""

from __future__ import annotations

import pickle

import numpy as np

from aiopsd.detectors.anomaly.context import ContextDetector


def _noise(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(n, dtype=np.float64) * 60.0, 10 + 3 * np.sin(np.arange(n) / 8.0) + rng.normal(0, 0.3, n)


def _alerts(det: ContextDetector, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.flatnonzero(det.fit(t[:0], v[:0]).score(t, v).anomaly_score >= 1.0)


def test_a_sustained_move_to_an_unseen_level_is_reported_once() -> None:
    t, v = _noise(3000)
    v[2000:2050] += 12.0
    alerts = _alerts(ContextDetector(), t, v)
    assert alerts.size == 1
    assert 2000 <= alerts[0] <= 2003


def test_a_lone_spike_is_left_to_the_forecast_view() -> None:
    t, v = _noise(3000)
    v[2000] += 12.0
    assert _alerts(ContextDetector(), t, v).size == 0  # one rare point of three (span) is not enough
    assert _alerts(ContextDetector(span=1), t, v).tolist() == [2000]


def test_nothing_alerts_in_the_warm_up_or_on_a_constant_series() -> None:
    t, v = _noise(1000)
    v[100:150] += 12.0  # inside the 300-point warm-up
    assert _alerts(ContextDetector(), t, v).size == 0
    assert _alerts(ContextDetector(), t, np.full(1000, 5.0)).size == 0


def test_a_new_normal_becomes_familiar() -> None:
    t, v = _noise(8000)
    v[2000:] += 12.0  # a level shift that stays
    alerts = _alerts(ContextDetector(), t, v)
    assert alerts.size == 1 and alerts[0] < 2010


def test_state_is_small_and_pickles() -> None:
    t, v = _noise(5000)
    det = ContextDetector().fit(t[:400], v[:400])
    det.score(t[400:3000], v[400:3000])
    blob = pickle.dumps(det)
    assert len(blob) < 2_000
    copy = pickle.loads(blob)
    np.testing.assert_array_equal(
        det.score(t[3000:], v[3000:]).anomaly_score, copy.score(t[3000:], v[3000:]).anomaly_score
    )
