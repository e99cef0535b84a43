"""Anomaly detectors for univariate series and the registry that names them."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from aiopsd.detectors.anomaly.adaptive import AdaptiveDetector
from aiopsd.detectors.anomaly.base import (
    AnomalyDetector,
    DetectorBase,
    InvalidParameterError,
    Score,
    Scores,
    stream_scores,
)
from aiopsd.detectors.anomaly.context import ContextDetector
from aiopsd.detectors.anomaly.ensemble import EnsembleDetector
from aiopsd.detectors.anomaly.iforest import IsolationForestDetector
from aiopsd.detectors.anomaly.mad import MADDetector
from aiopsd.detectors.anomaly.seasonal import (
    SeasonalDetector,
    decompose_detector,
    default_detector,
    holt_winters_detector,
    stl_detector,
)

DETECTORS: dict[str, Callable[..., AnomalyDetector]] = {
    "mad": MADDetector,
    "adaptive": AdaptiveDetector,
    "decompose": decompose_detector,
    "stl": stl_detector,
    "holt_winters": holt_winters_detector,
    "iforest": IsolationForestDetector,
    # decompose plus level tracking between refits (level_alpha 0.005) and the flat-line view
    # (flat_after 12): the default before the context view; the forecast view of `default`.
    "forecast": partial(default_detector, flat_after=12),
    # the forecast view and the context view, one report per anomaly: the out-of-fold winner of
    # bench/anomaly.py (docs/anomaly.md).
    "default": EnsembleDetector,
}


def make_detector(name: str, **params: Any) -> AnomalyDetector:
    """Build a fresh, unfitted detector by its registry name."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        known = ", ".join(sorted(DETECTORS))
        raise ValueError(f"unknown detector {name!r}; known detectors: {known}") from None
    return factory(**params)


def validate_detector_params(name: str, params: dict[str, Any]) -> None:
    """Check ``params`` for detector ``name`` as ``fit`` would, without fitting.

    Raises :class:`InvalidParameterError` naming the first unknown or invalid
    parameter (``aiopsd check`` reports it as ``watches.N.detector_params.FIELD``).
    """
    known = make_detector(name).get_params()
    for key in params:
        if key not in known:
            raise InvalidParameterError(
                str(key), f"unknown parameter {key!r} of detector {name!r}; known: {', '.join(sorted(known))}"
            )
    detector = make_detector(name, **params)
    if isinstance(detector, DetectorBase):
        detector._validate_params()


__all__ = [
    "DETECTORS",
    "AnomalyDetector",
    "ContextDetector",
    "EnsembleDetector",
    "InvalidParameterError",
    "MADDetector",
    "Score",
    "Scores",
    "SeasonalDetector",
    "make_detector",
    "stream_scores",
    "validate_detector_params",
]
