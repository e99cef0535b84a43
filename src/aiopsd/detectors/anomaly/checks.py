"""Conformance checks every anomaly detector passes (in the spirit of scikit-learn's ``check_estimator``).

    from aiopsd.detectors.anomaly.checks import check_detector, parametrize_with_checks

    check_detector(MyDetector())                     # runs every check, raises on the first failure

    @parametrize_with_checks({"mine": MyDetector()})  # one pytest case per (detector, check)
    def test_mine(detector, check):
        check(detector)

A check gets a detector instance and works on fresh clones of it (same class,
same parameters). What may differ between detectors comes from
``detector.get_tags()`` (``memory_bound``, ``cheap_params``), never from its name.
"""

from __future__ import annotations

import inspect
import math
import pickle
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from aiopsd.detectors.anomaly.base import AnomalyDetector, DetectorBase, InvalidParameterError, Scores, stream_scores
from aiopsd.errors import NotFittedError

Check = Callable[[AnomalyDetector], None]
AWKWARD = ("nan", "gaps", "irregular", "constant", "tiny", "empty", "steps")


def _clone(det: AnomalyDetector, **changes: Any) -> AnomalyDetector:
    return type(det)(**{**det.get_params(), **changes})


def _tags(det: AnomalyDetector) -> dict[str, Any]:
    return det.get_tags() if isinstance(det, DetectorBase) else DetectorBase().get_tags()


def _series(n: int = 1200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64) * 300.0
    v = 10 + 3 * np.sin(2 * np.pi * np.arange(n) / 48) + rng.normal(0, 0.3, n)
    v[n * 3 // 4] += 15.0
    return t, v


def _empty() -> np.ndarray:
    return np.empty(0, dtype=np.float64)


def _assert_same(a: Scores, b: Scores) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def _assert_sane(s: Scores) -> None:
    score = s.anomaly_score
    assert not np.isinf(score).any(), "scores are finite or NaN, never infinite"
    assert (score[~np.isnan(score)] >= 0).all()


def check_params_are_keyword_only_and_round_trip(det: AnomalyDetector) -> None:
    params = det.get_params()
    assert _clone(det).get_params() == params
    sig = inspect.signature(type(det).__init__)
    assert {p.kind for n, p in sig.parameters.items() if n != "self"} <= {inspect.Parameter.KEYWORD_ONLY}
    for key, value in params.items():
        assert getattr(det, key) == value


def check_params_are_declared(det: AnomalyDetector) -> None:
    """Every parameter has a constraint (what ``aiopsd check`` validates) and the defaults satisfy them."""
    if isinstance(det, DetectorBase):
        assert set(det._parameter_constraints) == set(det.get_params()), "one constraint per parameter"
        _clone(det)._validate_params()  # type: ignore[attr-defined]


def check_invalid_params_raise(det: AnomalyDetector) -> None:
    if not isinstance(det, DetectorBase):
        return
    t, v = _series(100)
    for name, constraint in det._parameter_constraints.items():
        bad = _clone(det, **{name: constraint.invalid_example()})
        try:
            bad.fit(t, v)
        except InvalidParameterError as exc:
            assert exc.field == name, f"{name}: error names {exc.field!r}"
        else:
            raise AssertionError(f"{name}={constraint.invalid_example()!r} was accepted")


def check_not_fitted_error_before_fit_and_fit_returns_self(det: AnomalyDetector) -> None:
    det = _clone(det)
    for call in (lambda: det.update(0.0, 1.0), lambda: det.score(np.zeros(3), np.zeros(3))):
        try:
            call()
        except NotFittedError:
            pass
        else:
            raise AssertionError("no NotFittedError before fit")
    t, v = _series(200)
    assert det.fit(t, v) is det


def check_fit_leaves_params_unchanged(det: AnomalyDetector) -> None:
    det = _clone(det)
    before = pickle.dumps(det.get_params())
    t, v = _series(600)
    det.fit(t, v)
    det.score(t[:50] + 1e6, v[:50])
    assert pickle.dumps(det.get_params()) == before


def check_fit_is_idempotent(det: AnomalyDetector) -> None:
    """Fitting again forgets the first fit: fit(a) then fit(b) streams like fit(b) alone."""
    t, v = _series()
    once = _clone(det).fit(t[:400], v[:400])
    twice = _clone(det).fit(t[400:], v[400:] * 3 + 7).fit(t[:400], v[:400])
    _assert_same(once.score(t[400:], v[400:]), twice.score(t[400:], v[400:]))


def check_update_is_causal(det: AnomalyDetector) -> None:
    t, v = _series()
    cut = 900
    future = v.copy()
    future[cut:] = future[cut:] * -3 + 100
    a = stream_scores(_clone(det).fit(_empty(), _empty()), t, v)
    b = stream_scores(_clone(det).fit(_empty(), _empty()), t, future)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[:cut], y[:cut])
    assert not np.array_equal(a.anomaly_score[cut:], b.anomaly_score[cut:])


def check_score_equals_streaming_and_is_deterministic(det: AnomalyDetector) -> None:
    t, v = _series()
    hist = 300
    batch = _clone(det).fit(t[:hist], v[:hist]).score(t[hist:], v[hist:])
    _assert_same(batch, stream_scores(_clone(det).fit(t[:hist], v[:hist]), t[hist:], v[hist:]))
    _assert_same(batch, _clone(det).fit(t[:hist], v[:hist]).score(t[hist:], v[hist:]))
    _assert_sane(batch)


def check_flags_an_obvious_spike_and_stays_quiet_before_it(det: AnomalyDetector) -> None:
    t, v = _series()
    s = _clone(det).fit(t[:400], v[:400]).score(t[400:], v[400:]).anomaly_score
    spike = len(v) * 3 // 4 - 400
    assert s[spike] >= 1.0
    assert np.mean(s[: spike - 1] >= 1.0) < 0.02


def check_awkward_input_is_handled(det: AnomalyDetector) -> None:
    for case in AWKWARD:
        t, v = _series(600)
        if case == "nan":
            v[::7] = np.nan
            v[100:160] = np.nan
        elif case == "gaps":
            t = np.concatenate([t[:300], t[300:] + 86_400 * 3])
        elif case == "irregular":
            t = np.cumsum(np.random.default_rng(1).exponential(300, len(t)))
        elif case == "constant":
            v = np.full(len(t), 42.0)
        elif case == "tiny":
            t, v = t[:3], v[:3]
        elif case == "empty":
            t, v = _empty(), _empty()
        elif case == "steps":
            v = np.repeat([0.0, 5.0, 0.0, 1e6, 1e6], len(t) // 5)
        s = _clone(det).fit(t[:2], v[:2]).score(t[2:], v[2:])
        assert all(len(x) == len(v[2:]) for x in s), case
        _assert_sane(s)
        if case == "nan":
            assert np.isnan(s.anomaly_score[np.isnan(v[2:])]).all()
        if case == "constant":
            assert (s.anomaly_score[~np.isnan(s.anomaly_score)] < 1.0).all()
        again = _clone(det).fit(t, v)  # fitting on awkward history, then streaming, works too
        assert math.isnan(again.update(float(t[-1] + 1 if len(t) else 0.0), math.nan).anomaly_score), case


def check_memory_per_series_is_bounded(det: AnomalyDetector) -> None:
    # 20,000 one-minute points (two weeks): past every window a detector keeps (a week at most).
    n = 20_000
    rng = np.random.default_rng(2)
    t = np.arange(n, dtype=np.float64) * 60.0
    v = np.sin(np.arange(n) / 20.0) + rng.normal(0, 0.1, n)
    tags = _tags(det)
    det = _clone(det, **tags["cheap_params"]).fit(t[:100], v[:100])
    sizes = []
    update = det.update
    for i in range(100, n):
        update(float(t[i]), float(v[i]))
        if i in (5_000, n - 1):
            sizes.append(len(pickle.dumps(det)))
    assert sizes[-1] < tags["memory_bound"], f"{sizes[-1]} bytes pickled"
    assert sizes[-1] < 2 * sizes[0] + 1024, "state does not grow with the number of points"


def check_pickle_round_trip_continues_identically(det: AnomalyDetector) -> None:
    t, v = _series()
    det = _clone(det).fit(t[:300], v[:300])
    det.score(t[300:700], v[300:700])
    copy = pickle.loads(pickle.dumps(det))  # noqa: S301 - our own bytes
    _assert_same(det.score(t[700:], v[700:]), copy.score(t[700:], v[700:]))


CHECKS: tuple[Check, ...] = (
    check_params_are_keyword_only_and_round_trip,
    check_params_are_declared,
    check_invalid_params_raise,
    check_not_fitted_error_before_fit_and_fit_returns_self,
    check_fit_leaves_params_unchanged,
    check_fit_is_idempotent,
    check_update_is_causal,
    check_score_equals_streaming_and_is_deterministic,
    check_flags_an_obvious_spike_and_stays_quiet_before_it,
    check_awkward_input_is_handled,
    check_memory_per_series_is_bounded,
    check_pickle_round_trip_continues_identically,
)


def _cases(detectors: Mapping[str, AnomalyDetector]) -> Iterator[tuple[str, AnomalyDetector, Check]]:
    for name, det in detectors.items():
        for check in CHECKS:
            yield f"{name}-{check.__name__.removeprefix('check_')}", det, check


def check_detector(det: AnomalyDetector) -> None:
    """Run every conformance check on ``det``; raise ``AssertionError`` on the first failure."""
    for _, d, check in _cases({"detector": det}):
        check(d)


Decorator = Callable[[Callable[..., None]], Callable[..., None]]


def parametrize_with_checks(detectors: Mapping[str, AnomalyDetector]) -> Decorator:
    """A ``pytest.mark.parametrize`` over ``(detector, check)``, one case per detector and check."""
    import pytest

    cases = list(_cases(detectors))
    mark: Decorator = pytest.mark.parametrize(
        ("detector", "check"), [(d, c) for _, d, c in cases], ids=[i for i, _, _ in cases]
    )
    return mark
