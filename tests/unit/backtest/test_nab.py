"""The NAB scorer on hand-made cases whose answers follow from the published formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiopsd.backtest.nab import (
    PROFILES,
    LabelledFile,
    label_file,
    optimise_threshold,
    probation_length,
    scaled_sigmoid,
    score_corpus,
)

STANDARD, LOW_FP, LOW_FN = PROFILES
MAX_TP = 2 / (1 + math.exp(-5)) - 1


def _file(n: int = 100, windows: tuple[tuple[float, float], ...] = ((50, 59),)) -> LabelledFile:
    return label_file("f.csv", np.arange(n, dtype=np.float64), list(windows))


def _scores(n: int, hits: list[int], value: float = 1.0) -> np.ndarray:
    s = np.zeros(n)
    s[hits] = value
    return s


def test_scaled_sigmoid_matches_nab_definition() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(MAX_TP)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(1.0) == pytest.approx(-MAX_TP)
    assert scaled_sigmoid(3.5) == -1.0


def test_probation_is_15_percent_capped_at_750() -> None:
    assert probation_length(100) == 15
    assert probation_length(4032) == 604
    assert probation_length(22695) == 750


def test_detection_at_window_start_is_perfect_and_null_is_zero() -> None:
    lab = _file()
    perfect = score_corpus([(lab, _scores(100, [50]))], STANDARD, 1.0)
    assert (perfect.tp, perfect.fp, perfect.fn) == (1, 0, 0)
    assert perfect.raw == pytest.approx(1.0)
    assert perfect.score == pytest.approx(100.0)
    null = score_corpus([(lab, _scores(100, []))], STANDARD, 1.0)
    assert null.raw == pytest.approx(-1.0)
    assert null.score == pytest.approx(0.0)


def test_late_detection_earns_the_sigmoid_of_its_position() -> None:
    lab = _file()
    late = score_corpus([(lab, _scores(100, [59]))], STANDARD, 1.0)
    expected = (2 / (1 + math.exp(-0.5)) - 1) / MAX_TP  # position -1/10 in the window
    assert late.raw == pytest.approx(expected)
    both = score_corpus([(lab, _scores(100, [55, 59]))], STANDARD, 1.0)
    first_only = score_corpus([(lab, _scores(100, [55]))], STANDARD, 1.0)
    assert both.raw == pytest.approx(first_only.raw)
    assert both.tp == 1


def test_false_positives_cost_by_profile_and_distance() -> None:
    lab = _file()
    before = _scores(100, [20])  # before any window: a full A_FP
    for profile, weight in ((STANDARD, 0.11), (LOW_FP, 0.22), (LOW_FN, 0.11)):
        r = score_corpus([(lab, before)], profile, 1.0)
        assert r.fp == 1
        assert r.raw == pytest.approx(-weight - profile.fn)
    after = score_corpus([(lab, _scores(100, [68]))], STANDARD, 1.0)  # 9 points past a width-10 window
    assert after.raw == pytest.approx(0.11 * scaled_sigmoid(1.0) - 1.0)
    far = score_corpus([(lab, _scores(100, [95]))], STANDARD, 1.0)  # 36/9 = 4 > 3 widths past
    assert far.raw == pytest.approx(-0.11 - 1.0)
    probation = score_corpus([(lab, _scores(100, [5]))], STANDARD, 1.0)
    assert probation.fp == 0
    assert probation.raw == pytest.approx(-1.0)


def test_reward_low_fn_rate_doubles_missed_windows() -> None:
    r = score_corpus([(_file(), _scores(100, []))], LOW_FN, 1.0)
    assert r.raw == pytest.approx(-2.0)
    assert r.score == pytest.approx(0.0)


def test_normalisation_is_across_the_corpus() -> None:
    hit = (_file(), _scores(100, [50]))
    miss = (_file(), _scores(100, []))
    r = score_corpus([hit, miss], STANDARD, 1.0)
    assert r.score == pytest.approx(50.0)


def test_optimised_threshold_finds_the_best_cut() -> None:
    lab = _file()
    scores = np.zeros(100)
    scores[52] = 0.6  # the anomaly, early in its window
    scores[[20, 30, 80]] = [0.9, 0.3, 0.2]  # one FP above it, two below
    best = optimise_threshold([(lab, scores)], STANDARD)
    assert best.threshold == pytest.approx(0.6)
    assert (best.tp, best.fp, best.fn) == (1, 1, 0)
    at = score_corpus([(lab, scores)], STANDARD, best.threshold)
    assert best.raw == pytest.approx(at.raw)
    # reward_low_FP_rate weighs that FP twice as much, still worth taking here.
    assert optimise_threshold([(lab, scores)], LOW_FP).threshold == pytest.approx(0.6)


def test_optimised_threshold_prefers_silence_over_only_false_positives() -> None:
    lab = _file()
    scores = _scores(100, [20, 25, 90])
    best = optimise_threshold([(lab, scores)], STANDARD)
    assert best.fp == 0
    assert best.score == pytest.approx(0.0)
