"""The contract every anomaly detector follows (scikit-learn style, streaming).

A detector is built with keyword-only parameters stored unchanged, learns in
``fit(timestamps, values)`` (returns ``self``), keeps learnt state in attributes
ending in ``_`` and raises :class:`~aiopsd.errors.NotFittedError` before fit.
``update(timestamp, value)`` is causal: the score of a point uses only that point
and the ones before it, and the state it keeps per series is bounded.
``anomaly_score >= 1`` means anomalous, in every detector.

:class:`DetectorBase` is the template: it validates the parameters against the
class's ``_parameter_constraints`` table (declared once, next to the
constructor; ``aiopsd check`` uses the same table), does the fitted check and
the NaN handling, and gives ``score()``. A subclass writes ``_fit`` and ``_update``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from aiopsd.errors import NotFittedError

FloatArray = npt.NDArray[np.float64]


class Score(NamedTuple):
    """One streaming score. Band fields are NaN where the model has no band."""

    anomaly_score: float
    yhat: float = math.nan
    yhat_lower: float = math.nan
    yhat_upper: float = math.nan


class Scores(NamedTuple):
    """Batch scores, aligned with the input arrays."""

    anomaly_score: FloatArray
    yhat: FloatArray
    yhat_lower: FloatArray
    yhat_upper: FloatArray


@runtime_checkable
class AnomalyDetector(Protocol):
    """What the daemon, the backtest and the contract suite rely on."""

    def get_params(self) -> dict[str, Any]: ...

    def fit(self, timestamps: FloatArray, values: FloatArray) -> Self: ...

    def update(self, timestamp: float, value: float) -> Score: ...

    def score(self, timestamps: FloatArray, values: FloatArray) -> Scores: ...


class InvalidParameterError(ValueError):
    """A detector parameter is unknown or out of its declared range; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` between ``low`` and ``high`` (``None``: unbounded), ends as ``closed`` says."""

    kind: type[int] | type[float]
    low: float | None = None
    high: float | None = None
    closed: Literal["both", "left", "right", "neither"] = "both"

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not allowed, or ``None``."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {'an int' if self.kind is int else 'a number'}"
        if self.kind is int and not isinstance(value, int):
            return "must be an int"
        if not math.isfinite(value):
            return "must be finite"
        if self.low is not None:
            if self.closed in ("both", "left") and value < self.low:
                return f"must be >= {self.low:g}"
            if self.closed in ("right", "neither") and value <= self.low:
                return f"must be > {self.low:g}"
        if self.high is not None:
            if self.closed in ("both", "right") and value > self.high:
                return f"must be <= {self.high:g}"
            if self.closed in ("left", "neither") and value >= self.high:
                return f"must be < {self.high:g}"
        return None

    def invalid_example(self) -> object:
        """A value this constraint refuses (for the conformance checks)."""
        if self.low is not None:
            return self.kind(self.low - 1)
        if self.high is not None:
            return self.kind(self.high + 1)
        return "not a number"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: tuple[object, ...]

    def problem(self, value: object) -> str | None:
        if value in self.values:
            return None
        return "must be one of " + ", ".join(repr(v) for v in self.values)

    def invalid_example(self) -> object:
        return "__not_an_option__"


Constraint = Interval | Options


class DetectorBase:
    """What every detector shares: parameters, validation, the fitted check, NaN in → NaN out, ``score``.

    ``get_params`` reads the constructor's keyword-only parameters (stored unchanged
    as attributes of the same name), so adding a parameter needs no second list;
    ``_parameter_constraints`` must name each of them (the conformance suite checks it).
    """

    _fitted_attr: ClassVar[str] = "buffer_"
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {}

    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {p.name: getattr(self, p.name) for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY}

    def get_tags(self) -> dict[str, Any]:
        """What the conformance checks may rely on, per detector (scikit-learn's estimator tags).

        ``memory_bound``: most bytes of pickled state per series after 50,000 points.
        ``cheap_params``: parameters that make a long check run fast without changing the state size.
        """
        return {"memory_bound": 200_000, "cheap_params": {}}

    def _validate_params(self) -> None:
        """Raise :class:`InvalidParameterError` naming the first bad parameter."""
        params = self.get_params()
        for name, constraint in self._parameter_constraints.items():
            problem = constraint.problem(params[name])
            if problem is not None:
                raise InvalidParameterError(name, f"{name} {problem}, not {params[name]!r}")
        self._validate_together(params)

    def _validate_together(self, params: Mapping[str, Any]) -> None:
        """Constraints between parameters (override; raise :class:`InvalidParameterError`)."""

    def fit(self, timestamps: FloatArray, values: FloatArray) -> Self:
        self._validate_params()
        self._fit(np.asarray(timestamps, dtype=np.float64), np.asarray(values, dtype=np.float64))
        return self

    def _fit(self, timestamps: FloatArray, values: FloatArray) -> None:
        raise NotImplementedError

    def update(self, timestamp: float, value: float) -> Score:
        if not hasattr(self, self._fitted_attr):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")
        if not math.isfinite(value):
            return Score(math.nan)
        return self._update(timestamp, value)

    def _update(self, timestamp: float, value: float) -> Score:
        raise NotImplementedError

    def score(self, timestamps: FloatArray, values: FloatArray) -> Scores:
        self._check_fitted()
        return stream_scores(self, timestamps, values)

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attr):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")


def stream_scores(detector: AnomalyDetector, timestamps: FloatArray, values: FloatArray) -> Scores:
    """Score arrays by calling ``update`` point by point (the causal reference path)."""
    n = len(values)
    out = np.full((4, n), np.nan)
    for i in range(n):
        s = detector.update(float(timestamps[i]), float(values[i]))
        out[0, i], out[1, i], out[2, i], out[3, i] = s
    return Scores(out[0], out[1], out[2], out[3])
