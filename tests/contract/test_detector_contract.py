"""One conformance suite that every registered anomaly detector passes (like check_estimator)."""

from __future__ import annotations

import inspect
import math
import pickle

import numpy as np
import pytest

from aiopsd.detectors.anomaly import DETECTORS, make_detector
from aiopsd.detectors.anomaly.base import AnomalyDetector, Scores, stream_scores
from aiopsd.errors import NotFittedError

NAMES = sorted(DETECTORS)
MEMORY_BOUND = 200_000  # bytes of pickled state per series after 50k points, any detector
DEFAULT_MEMORY_BOUND = 20_000
# Refits are what cost time in the 50k-point memory test; state size does not depend on them.
RARE_REFITS = {"stl": {"refit_every": 4096}, "holt_winters": {"refit_every": 8192},
               "iforest": {"refit_every": 4096}}


def _series(n: int = 1200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64) * 300.0
    v = 10 + 3 * np.sin(2 * np.pi * np.arange(n) / 48) + rng.normal(0, 0.3, n)
    v[n * 3 // 4] += 15.0
    return t, v


def _fresh(name: str) -> AnomalyDetector:
    return make_detector(name)


def _empty() -> np.ndarray:
    return np.empty(0, dtype=np.float64)


def _assert_same(a: Scores, b: Scores) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def _assert_sane(s: Scores) -> None:
    score = s.anomaly_score
    assert not np.isinf(score).any(), "scores are finite or NaN, never infinite"
    assert (score[~np.isnan(score)] >= 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_params_are_keyword_only_and_round_trip(name: str) -> None:
    det = _fresh(name)
    params = det.get_params()
    factory = DETECTORS[name]
    again = factory(**params)
    assert again.get_params() == params
    sig = inspect.signature(type(det).__init__)
    kinds = {p.kind for n, p in sig.parameters.items() if n != "self"}
    assert kinds <= {inspect.Parameter.KEYWORD_ONLY}
    for key, value in params.items():
        assert getattr(det, key) == value


@pytest.mark.parametrize("name", NAMES)
def test_not_fitted_error_before_fit_and_fit_returns_self(name: str) -> None:
    det = _fresh(name)
    with pytest.raises(NotFittedError):
        det.update(0.0, 1.0)
    with pytest.raises(NotFittedError):
        det.score(np.zeros(3), np.zeros(3))
    t, v = _series(200)
    assert det.fit(t, v) is det


@pytest.mark.parametrize("name", NAMES)
def test_update_is_causal(name: str) -> None:
    t, v = _series()
    cut = 900
    future = v.copy()
    future[cut:] = future[cut:] * -3 + 100
    a = stream_scores(_fresh(name).fit(_empty(), _empty()), t, v)
    b = stream_scores(_fresh(name).fit(_empty(), _empty()), t, future)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[:cut], y[:cut])
    assert not np.array_equal(a.anomaly_score[cut:], b.anomaly_score[cut:])


@pytest.mark.parametrize("name", NAMES)
def test_score_equals_streaming_and_is_deterministic(name: str) -> None:
    t, v = _series()
    hist = 300
    batch = _fresh(name).fit(t[:hist], v[:hist]).score(t[hist:], v[hist:])
    streamed = stream_scores(_fresh(name).fit(t[:hist], v[:hist]), t[hist:], v[hist:])
    _assert_same(batch, streamed)
    _assert_same(batch, _fresh(name).fit(t[:hist], v[:hist]).score(t[hist:], v[hist:]))
    _assert_sane(batch)


@pytest.mark.parametrize("name", NAMES)
def test_flags_an_obvious_spike_and_stays_quiet_before_it(name: str) -> None:
    t, v = _series()
    s = _fresh(name).fit(t[:400], v[:400]).score(t[400:], v[400:]).anomaly_score
    spike = len(v) * 3 // 4 - 400
    assert s[spike] >= 1.0
    quiet = s[: spike - 1]
    assert np.mean(quiet >= 1.0) < 0.02


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", ["nan", "gaps", "irregular", "constant", "tiny", "empty", "steps"])
def test_awkward_input_is_handled(name: str, case: str) -> None:
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
    det = _fresh(name).fit(t[:2], v[:2])
    s = det.score(t[2:], v[2:])
    assert all(len(x) == len(v[2:]) for x in s)
    _assert_sane(s)
    if case == "nan":
        assert np.isnan(s.anomaly_score[np.isnan(v[2:])]).all()
    if case == "constant":
        assert (s.anomaly_score[~np.isnan(s.anomaly_score)] < 1.0).all()
    # Fitting on awkward history, then streaming, works too.
    again = _fresh(name).fit(t, v)
    assert math.isnan(again.update(float(t[-1] + 1 if len(t) else 0.0), math.nan).anomaly_score)


@pytest.mark.parametrize("name", NAMES)
def test_memory_per_series_is_bounded(name: str) -> None:
    n = 50_000
    rng = np.random.default_rng(2)
    t = np.arange(n, dtype=np.float64) * 60.0
    v = np.sin(np.arange(n) / 20.0) + rng.normal(0, 0.1, n)
    det = make_detector(name, **RARE_REFITS.get(name, {})).fit(t[:100], v[:100])
    sizes = []
    for i in range(100, n):
        det.update(float(t[i]), float(v[i]))
        if i in (5_000, n - 1):
            sizes.append(len(pickle.dumps(det)))
    bound = DEFAULT_MEMORY_BOUND if name == "default" else MEMORY_BOUND
    assert sizes[-1] < bound
    assert sizes[-1] < 2 * sizes[0] + 1024, "state does not grow with the number of points"


@pytest.mark.parametrize("name", NAMES)
def test_pickle_round_trip_continues_identically(name: str) -> None:
    t, v = _series()
    det = _fresh(name).fit(t[:300], v[:300])
    det.score(t[300:700], v[300:700])
    copy = pickle.loads(pickle.dumps(det))
    _assert_same(det.score(t[700:], v[700:]), copy.score(t[700:], v[700:]))
