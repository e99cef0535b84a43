from __future__ import annotations

import math

import numpy as np
import pytest

from aiopsd.detectors.anomaly import MADDetector
from aiopsd.detectors.anomaly.incidents import Event, IncidentTracker
from aiopsd.errors import NotFittedError


def test_one_incident_per_anomalous_stretch() -> None:
    tr = IncidentTracker(resolve_after=3)
    scores = [0.1, 2.0, 3.0, 0.2, 5.0, 0.1, 0.1, 0.1, 0.3, 1.5]
    events = [tr.observe(float(i), s) for i, s in enumerate(scores)]
    assert events == [
        None,
        Event.OPENED,
        Event.CONTINUED,
        None,
        Event.CONTINUED,
        None,
        None,
        Event.RESOLVED,
        None,
        Event.OPENED,
    ]
    assert tr.last_start == 9.0


def test_nan_scores_neither_open_nor_close() -> None:
    tr = IncidentTracker(resolve_after=1)
    assert tr.observe(0, 2.0) == Event.OPENED
    assert tr.observe(1, math.nan) is None
    assert tr.open_since == 0


def test_mad_flags_a_spike_and_not_the_noise() -> None:
    rng = np.random.default_rng(0)
    values = 10 + rng.normal(0, 1, 500)
    det = MADDetector().fit(np.arange(300.0), values[:300])
    normal = [det.update(float(t), float(v)).anomaly_score for t, v in zip(range(300, 500), values[300:], strict=True)]
    assert max(normal) < 1.5
    spike = det.update(500.0, 25.0)
    assert spike.anomaly_score > 2 and spike.yhat_lower < 10 < spike.yhat_upper


def test_mad_needs_fit() -> None:
    with pytest.raises(NotFittedError):
        MADDetector().update(0.0, 1.0)
