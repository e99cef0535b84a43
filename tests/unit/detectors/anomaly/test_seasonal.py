"""The forecast view's count transform: counts are modelled on their square root, the band stays in their unit."""

from __future__ import annotations

import numpy as np

from aiopsd.detectors.anomaly import SeasonalDetector, make_detector


def _counts(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Poisson request counts with a strong daily cycle (288 points a day): noise grows with the level."""
    rng = np.random.default_rng(seed)
    rate = 200 * (1 + 0.9 * np.sin(2 * np.pi * np.arange(n) / 288))
    return np.arange(n, dtype=np.float64) * 300.0, rng.poisson(rate).astype(np.float64)


def test_counts_are_modelled_on_their_square_root_and_banded_in_their_unit() -> None:
    t, v = _counts(3000, 0)
    det = SeasonalDetector(transform="counts").fit(t[:0], v[:0])
    s = det.score(t, v)
    assert det.sqrt_
    inside = (s.yhat_lower[1500:] <= v[1500:]) & (v[1500:] <= s.yhat_upper[1500:])
    assert inside.mean() > 0.99  # the band is in requests, not in sqrt(requests)
    assert abs(float(np.median(s.yhat[1500:] - v[1500:]))) < 5.0


def test_values_that_are_not_counts_are_modelled_as_they_are() -> None:
    t, v = _counts(3000, 1)
    v = v + 0.5  # not integers: the transform stays off and nothing changes
    det = SeasonalDetector(transform="counts").fit(t[:0], v[:0])
    got = det.score(t, v)
    assert not det.sqrt_
    plain = SeasonalDetector().fit(t[:0], v[:0]).score(t, v)
    assert np.array_equal(got.anomaly_score, plain.anomaly_score, equal_nan=True)


def test_square_root_keeps_one_bar_across_the_day() -> None:
    """+60 requests at the daily trough (rate 20) is far outside Poisson noise there, not at the peak (rate 380):
    one scale for the whole day misses it, the square root's steady noise does not."""
    found = {}
    for transform in ("none", "counts"):
        found[transform] = 0
        for seed in range(5):
            t, v = _counts(3000, seed)
            at = 216 + 288 * 7  # a trough, a week in
            v[at : at + 3] += 60.0
            s = make_detector("default", transform=transform).fit(t[:0], v[:0]).score(t, v)
            found[transform] += bool((s.anomaly_score[at : at + 3] >= 1.0).any())
            assert (s.anomaly_score[1000:at] < 1.0).all()  # and nothing before it
    assert found == {"none": 0, "counts": 5}


def test_a_burst_in_counts_is_still_reported() -> None:
    t, v = _counts(3000, 2)
    v[2000:2010] += 400.0
    s = make_detector("default").fit(t[:0], v[:0]).score(t, v)
    assert (s.anomaly_score[2000:2010] >= 1.0).any()
