"""Every registered anomaly detector passes the conformance checks (no per-detector knowledge here)."""

from __future__ import annotations

import numpy as np
import pytest

from aiopsd.detectors.anomaly import DETECTORS, make_detector
from aiopsd.detectors.anomaly.base import AnomalyDetector
from aiopsd.detectors.anomaly.checks import Check, check_detector, parametrize_with_checks
from aiopsd.detectors.anomaly.mad import MADDetector


@parametrize_with_checks({name: make_detector(name) for name in sorted(DETECTORS)})
def test_registered_detector(detector: AnomalyDetector, check: Check) -> None:
    check(detector)


class _Sticky(MADDetector):
    """Keeps what the first fit learnt when fitted again (fit is not idempotent)."""

    def _fit(self, timestamps: np.ndarray, values: np.ndarray) -> None:
        if not hasattr(self, "buffer_"):
            super()._fit(timestamps, values)


def test_check_detector_catches_a_broken_detector() -> None:
    check_detector(MADDetector())
    with pytest.raises(AssertionError):
        check_detector(_Sticky())
