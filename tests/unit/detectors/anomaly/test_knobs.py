"""The operator's noise knobs hold back alerts but never hide the score."""

from __future__ import annotations

import numpy as np
import pytest

from aiopsd.detectors.anomaly import make_detector
from aiopsd.detectors.anomaly.calibrate import BELOW_ONE
from aiopsd.detectors.anomaly.knobs import Knobs, knob_problem, with_knobs


def _series() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(600, dtype=np.float64) * 60.0
    v = 100 + rng.normal(0, 1, 600)
    v[300] += 30  # up spike
    v[400] -= 30  # down spike
    v[500] += 6  # small up spike: about 6 sigma, 6 % of the level
    return t, v


def _alerts(knobs: Knobs) -> set[int]:
    t, v = _series()
    det = with_knobs(make_detector("mad"), knobs).fit(t[:50], v[:50])
    s = det.score(t[50:], v[50:]).anomaly_score
    return {int(i) + 50 for i in np.flatnonzero(s >= 1.0)}


def test_without_knobs_every_spike_alerts_and_the_detector_is_not_wrapped() -> None:
    assert {300, 400, 500} <= _alerts(Knobs())
    det = make_detector("mad")
    assert with_knobs(det, Knobs()) is det


@pytest.mark.parametrize(
    ("knobs", "kept", "held"),
    [
        (Knobs(direction="up"), {300, 500}, {400}),
        (Knobs(direction="down"), {400}, {300, 500}),
        (Knobs(min_deviation=10), {300, 400}, {500}),
        (Knobs(min_relative_deviation=0.1), {300, 400}, {500}),
        (Knobs(warmup=60.0 * 350), {400, 500}, {300}),
    ],
)
def test_knobs_hold_back_what_they_say(knobs: Knobs, kept: set[int], held: set[int]) -> None:
    alerts = _alerts(knobs)
    assert kept <= alerts
    assert not held & alerts


def test_held_back_points_keep_a_visible_score() -> None:
    t, v = _series()
    det = with_knobs(make_detector("mad"), Knobs(direction="up")).fit(t[:50], v[:50])
    s = det.score(t[50:], v[50:])
    assert s.anomaly_score[400 - 50] == BELOW_ONE
    assert s.yhat[400 - 50] == pytest.approx(100, abs=1)


def test_knobs_that_need_a_band_are_refused_for_a_detector_without_one() -> None:
    assert knob_problem(make_detector("iforest"), Knobs(direction="up")) is not None
    assert knob_problem(make_detector("iforest"), Knobs(warmup=60)) is None
    assert knob_problem(make_detector("default"), Knobs(direction="up")) is None
