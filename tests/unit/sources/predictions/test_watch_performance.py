"""The drift watch, for real on generated logs: estimated performance before labels, its error once
they arrive, and per-segment drift with one shared budget (segment values stay data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest

from aiopsd.config import PredictionLogConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.engine.evaluate import matches
from aiopsd.engine.rules import Rule
from aiopsd.errors import SourceError
from aiopsd.models import Finding, FindingStatus
from aiopsd.sources.predictions.watch import DriftWatch
from aiopsd.store import StateStore
from tests.support import run_poll

pytestmark = pytest.mark.unit

HOSTILE = '{{ lookup("pipe", "id") }}";rm -rf /'
COUNTRIES = ["DE", "FR", "IT", HOSTILE]


def frame(rng: np.random.Generator, n: int, *, spread: float = 1.5, shift_in: str | None = None) -> pd.DataFrame:
    """``score`` is the calibrated P(label=1 | x1): x1 close to 0 (small ``spread``) lowers accuracy."""
    x1 = rng.normal(0.0, spread, n)
    country = rng.choice(COUNTRIES, n)
    x2 = rng.normal(0.0, 1.0, n) + np.where(country == shift_in, 3.0, 0.0)
    score = 1 / (1 + np.exp(-2 * x1))
    label = (rng.random(n) < score).astype(int)
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "country": country,
            "score": score,
            "prediction": (score >= 0.5).astype(int),
            "label": label,
        }
    )


def log(path: Path, df: pd.DataFrame, t0: float, *, labels: bool, first_id: int) -> None:
    with path.open("a") as fh:
        for i, row in enumerate(df.to_dict("records")):
            rec: dict[str, Any] = {
                "timestamp": t0 + i,
                "model": "m",
                "prediction_id": f"p{first_id + i}",
                **{k: row[k] for k in ("x1", "x2", "country", "score", "prediction")},
            }
            if labels:
                rec["label"] = row["label"]
            fh.write(json.dumps(rec) + "\n")


def late_labels(path: Path, df: pd.DataFrame, t0: float, *, first_id: int) -> None:
    with path.open("a") as fh:
        for i, y in enumerate(df["label"]):
            fh.write(json.dumps({"timestamp": t0 + i, "prediction_id": f"p{first_id + i}", "label": int(y)}) + "\n")


def watch(tmp_path: Path, store: StateStore, metrics: Metrics, **extra: Any) -> tuple[DriftWatch, Path]:
    ref = tmp_path / "ref.csv"
    if not ref.exists():
        frame(np.random.default_rng(0), 4000).to_csv(ref, index=False)
    path = tmp_path / "m.jsonl"
    cfg = PredictionLogConfig.model_validate(
        {"model": "m", "path": str(path), "reference": str(ref), "window": {"rows": 400}, "reports": False, **extra}
    )
    return DriftWatch(cfg, store, metrics, tmp_path / "state"), path


def firing(found: list[Finding], test: str | None = None) -> list[Finding]:
    return [f for f in found if f.status == FindingStatus.FIRING and f.labels.get("test") == test]


def text(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_a_covariate_shift_opens_estimated_performance_before_labels_then_the_error_is_exported(
    tmp_path: Path, store: StateStore
) -> None:
    metrics = Metrics()
    w, path = watch(tmp_path, store, metrics, estimate={"metric": "accuracy", "max_drop": 0.05})
    rng = np.random.default_rng(1)
    log(path, frame(rng, 400), 1000.0, labels=False, first_id=0)
    assert firing(run_poll(w, 2000.0), "estimated_performance") == [], "a window like the reference keeps its accuracy"
    assert 'aiopsd_performance_estimate{metric="accuracy",model="m"}' in text(metrics)

    shifted = frame(rng, 400, spread=0.3)
    log(path, shifted, 3000.0, labels=False, first_id=1000)
    found = firing(run_poll(w, 4000.0), "estimated_performance")
    assert len(found) == 1, "the drop is seen with no label yet"
    f = found[0]
    assert f.labels == {"model": "m", "test": "estimated_performance", "metric": "accuracy"}
    assert f.details["reference_value"] - f.details["estimated_value"] > 0.05
    assert f.details["method"] == "cbpe" and f.score >= 1.0
    rule = Rule.model_validate(
        {
            "name": "act-on-estimate",
            "match": {"kind": "drift", "labels": {"model": "m", "test": "estimated_performance"}, "min_score": 1.0},
            "action": {"notify": {"message": "estimated drop"}},
        }
    )
    assert matches(rule.match, f)
    assert "aiopsd_performance_realised{" not in text(metrics), "nothing realised before the labels"

    late_labels(path, shifted, 5000.0, first_id=1000)
    run_poll(w, 6000.0)
    out = text(metrics)
    realised = float(out.split('aiopsd_performance_realised{metric="accuracy",model="m"} ')[1].split()[0])
    error = float(out.split('aiopsd_performance_estimation_error{metric="accuracy",model="m"} ')[1].split()[0])
    actual = float(np.mean(shifted["prediction"] == shifted["label"]))
    assert realised == pytest.approx(actual)
    assert abs(error) < 0.1, "CBPE holds under covariate shift"
    assert f.details["reference_value"] - realised > 0.05, "the labels confirm the drop the estimate announced"


def test_a_shift_in_one_segment_names_it_and_the_other_segments_stay_quiet(tmp_path: Path, store: StateStore) -> None:
    metrics = Metrics()
    w, path = watch(tmp_path, store, metrics, segment_by=["country"])
    rng = np.random.default_rng(2)
    log(path, frame(rng, 400), 1000.0, labels=False, first_id=0)
    assert run_poll(w, 2000.0) == []
    log(path, frame(rng, 400, shift_in="IT"), 3000.0, labels=False, first_id=1000)
    found = run_poll(w, 4000.0)
    segs = sorted(f.labels["segment"] for f in firing(found) if "segment" in f.labels)
    assert segs == ["country=IT"]
    seg = next(f for f in found if f.labels.get("segment") == "country=IT")
    assert seg.details["drifted"] == ["x2"] and seg.details["segment"] == "country=IT"
    saved = pd.read_csv(seg.details["window_csv"])  # what a retrain rule would train on: that segment's rows
    assert len(saved) == seg.details["window_rows"] and set(saved["country"]) == {"IT"}
    assert seg.details["reference_csv"] == str(tmp_path / "ref.csv")


def test_a_restarted_watch_continues_the_open_segment_episode(tmp_path: Path, store: StateStore) -> None:
    w, path = watch(tmp_path, store, Metrics(), segment_by=["country"])
    rng = np.random.default_rng(8)
    log(path, frame(rng, 400, shift_in="FR"), 1000.0, labels=False, first_id=0)
    [opened] = [f for f in firing(run_poll(w, 2000.0)) if "segment" in f.labels]
    log(path, frame(rng, 400, shift_in="FR"), 3000.0, labels=False, first_id=1000)
    again, _ = watch(tmp_path, store, Metrics(), segment_by=["country"])
    [continued] = [f for f in firing(run_poll(again, 4000.0)) if "segment" in f.labels]
    assert continued.id == opened.id and continued.details["event"] == "continued"


def test_regression_dle_estimates_a_higher_mae_under_covariate_shift(tmp_path: Path, store: StateStore) -> None:
    def rows(rng: np.random.Generator, n: int, centre: float) -> pd.DataFrame:
        x1 = rng.normal(centre, 1.0, n)
        pred = x1 + rng.normal(0, 0.05, n)
        return pd.DataFrame({"x1": x1, "prediction": pred, "label": x1 + rng.normal(0, 0.1 + np.abs(x1), n)})

    rows(np.random.default_rng(9), 3000, 0.0).to_csv(tmp_path / "ref.csv", index=False)
    metrics = Metrics()
    w, path = watch(tmp_path, store, metrics, task="regression", estimate={"metric": "mae"})
    rng = np.random.default_rng(10)
    with path.open("a") as fh:
        for i, r in enumerate([*rows(rng, 400, 0.0).to_dict("records"), *rows(rng, 400, 3.0).to_dict("records")]):
            fh.write(json.dumps({"timestamp": 1000.0 + i, "features": {"x1": r["x1"]}, "prediction": r["prediction"]}))
            fh.write("\n")
    [f] = firing(run_poll(w, 5000.0), "estimated_performance")
    assert f.labels["metric"] == "mae" and f.details["method"] == "dle"
    assert f.details["estimated_value"] > 1.2 * f.details["reference_value"]
    assert 'aiopsd_performance_estimate{metric="mae",model="m"}' in text(metrics)


def test_a_hostile_segment_value_stays_data(tmp_path: Path, store: StateStore) -> None:
    w, path = watch(tmp_path, store, Metrics(), segment_by=["country"], estimate={})
    rng = np.random.default_rng(3)
    log(path, frame(rng, 400, shift_in=HOSTILE), 1000.0, labels=False, first_id=0)
    found = firing(run_poll(w, 2000.0))
    assert [f.labels["segment"] for f in found if "segment" in f.labels] == [f"country={HOSTILE}"]
    stored = [f for f in store.active_findings() if f.labels.get("segment")]
    assert stored[0].labels["segment"] == f"country={HOSTILE}" and HOSTILE in stored[0].summary


def test_a_high_cardinality_segment_column_is_capped(tmp_path: Path, store: StateStore) -> None:
    ref = frame(np.random.default_rng(4), 4000)
    ref["user"] = [f"u{i % 300}" for i in range(len(ref))]
    ref.loc[: len(ref) // 2, "user"] = "big"
    (tmp_path / "ref.csv").write_text(ref.to_csv(index=False))
    w, _ = watch(tmp_path, store, Metrics(), segment_by=["user", "country"], max_segments=3)
    assert w._load_reference() and w.segments is not None
    users = [k for k in w.segments.segments if k.startswith("user=")]
    assert len(users) <= 4 and "user=big" in users and "user=(other)" in users


def test_a_reference_without_the_score_column_puts_the_source_down_with_the_reason(
    tmp_path: Path, store: StateStore
) -> None:
    frame(np.random.default_rng(5), 400).drop(columns=["score"]).to_csv(tmp_path / "ref.csv", index=False)
    w, path = watch(tmp_path, store, Metrics(), estimate={})
    log(path, frame(np.random.default_rng(6), 400), 1000.0, labels=False, first_id=0)
    with pytest.raises(SourceError, match="score column 'score'"):
        w.poll(2000.0)


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"estimate": {"metric": "mae"}}, "does not fit task classification"),
        ({"task": "regression", "estimate": {"metric": "f1"}}, "does not fit task regression"),
        ({"segment_by": ["label"]}, "is not a feature column"),
        ({"segment_by": ["country"], "max_segments": 0}, "max_segments"),
        ({"estimate": {"max_drop": -1}}, "max_drop"),
    ],
)
def test_bad_estimate_and_segment_config_says_which_field(extra: dict[str, Any], why: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=why):
        PredictionLogConfig.model_validate({"model": "m", "path": "x.jsonl", **extra})
