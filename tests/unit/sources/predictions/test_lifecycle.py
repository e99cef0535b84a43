"""The lifecycle state machine on a directory store: shadow -> promote | reject, watch -> rollback, crashes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from aiopsd.config import PredictionLogConfig
from aiopsd.model_store import ModelStore, StoreSpec, open_store
from aiopsd.sources.predictions.lifecycle import ModelLifecycle
from aiopsd.sources.predictions.windows import PredictionWindow

FEATURES = ["x0", "x1"]


class Audit:
    def __init__(self, fail_on: str | None = None) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []
        self.fail_on = fail_on

    def audit(self, kind: str, now: datetime, event: Mapping[str, Any]) -> None:
        if kind == self.fail_on:
            self.fail_on = None
            raise RuntimeError("killed between the registry write and the audit write")
        self.entries.append((kind, dict(event)))

    @property
    def kinds(self) -> list[str]:
        return [k for k, _ in self.entries]


def data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 2)), columns=FEATURES)
    return x, (x["x0"] + 0.5 * x["x1"] > 0).astype(int).to_numpy()


def window(start: float, n: int, *, version: int, right: float, seed: int) -> PredictionWindow:
    """``n`` labelled rows logged by ``version`` whose logged prediction is right with probability ``right``."""
    x, y = data(n, seed)
    rng = np.random.default_rng(seed + 1000)
    pred = np.where(rng.random(n) < right, y, 1 - y)
    ts = start + np.arange(n, dtype=float)
    frame = x.assign(timestamp=ts, model="m", version=str(version), prediction=pred, label=y)
    frame["prediction_id"] = [f"{seed}-{i}" for i in range(n)]
    return PredictionWindow("labels", float(ts[0]), float(ts[-1]), frame, ("m",), (str(version),))


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    s = open_store(StoreSpec(kind="directory", path=tmp_path / "models"))
    x, y = data(400, 1)
    s.promote(s.register(DummyClassifier(strategy="most_frequent").fit(x, y), metrics={}).number)
    s.register(LogisticRegression().fit(x, y), metrics={}, status="shadow")
    return s


def cfg(tmp_path: Path, **lifecycle: Any) -> PredictionLogConfig:
    life = {"shadow": {"rows": 400}, "min_improvement": 0.05, "watch_after_promotion": "1h", **lifecycle}
    return PredictionLogConfig(
        model="m", path=str(tmp_path / "log.jsonl"), model_dir=tmp_path / "models", lifecycle=life
    )


def run(life: ModelLifecycle, *windows: PredictionWindow, now: float = 1e9) -> None:
    life.refresh(now)
    for w in windows:
        life.observe(w)
    life.commit(now)


def started(life: ModelLifecycle, at: float = 1000.0) -> None:
    """The challenger is first seen when the log has reached ``at``."""
    life.log_time = at
    life.refresh(0.0)


def test_a_better_challenger_is_promoted_after_its_rows_on_the_bound(tmp_path: Path, store: ModelStore) -> None:
    audit = Audit()
    life = ModelLifecycle(cfg(tmp_path), store, audit, tmp_path / "state")
    started(life)
    run(life, window(700, 200, version=1, right=0.7, seed=2), window(1001, 250, version=1, right=0.7, seed=3))
    rec = store.get(2).meta["lifecycle"]
    assert store.current() == 1 and store.get(2).status == "shadow"
    assert rec["state"] == "shadow" and rec["comparison"]["rows"] == 250  # rows before `since` not compared
    run(life, window(1300, 250, version=1, right=0.7, seed=4), now=2e9)
    rec = store.get(2).meta["lifecycle"]
    assert store.current() == 2 and store.get(2).status == "promoted"
    c = rec["comparison"]
    assert c["rows"] == 400 and c["low"] >= 0.05 and c["low"] <= c["advantage"] <= c["high"]
    assert rec["decision"]["outcome"] == "promote" and rec["state"] == "watching"
    assert rec["watch"]["previous"] == 1 and rec["watch"]["baseline"] == pytest.approx(c["champion"])
    assert audit.kinds == ["model_promoted"] and audit.entries[0][1]["version"] == 2


def test_a_challenger_that_does_not_win_by_the_margin_is_rejected_with_its_comparison(
    tmp_path: Path, store: ModelStore
) -> None:
    audit = Audit()
    life = ModelLifecycle(cfg(tmp_path, min_improvement=0.5), store, audit, tmp_path / "state")
    started(life)
    run(life, window(1001, 450, version=1, right=0.8, seed=5))
    v = store.get(2)
    assert store.current() == 1 and v.status == "rejected" and v.meta["lifecycle"]["state"] == "rejected"
    assert v.meta["lifecycle"]["comparison"]["rows"] == 400
    assert "does not reach 0.5" in v.meta["lifecycle"]["decision"]["reason"]
    assert audit.kinds == ["model_rejected"]


def test_rows_of_other_versions_are_not_compared_and_a_restart_keeps_the_rows(
    tmp_path: Path, store: ModelStore
) -> None:
    life = ModelLifecycle(cfg(tmp_path), store, Audit(), tmp_path / "state")
    started(life)
    run(life, window(1001, 300, version=7, right=0.7, seed=6), window(1400, 300, version=1, right=0.7, seed=7))
    assert store.get(2).meta["lifecycle"]["comparison"]["rows"] == 300
    again = ModelLifecycle(cfg(tmp_path), store, Audit(), tmp_path / "state")  # a restarted daemon
    run(again, window(1800, 150, version=1, right=0.7, seed=8))
    assert store.current() == 2  # 300 kept + 100 new rows reached 400


def test_a_poll_whose_findings_were_not_stored_forgets_its_rows(tmp_path: Path, store: ModelStore) -> None:
    life = ModelLifecycle(cfg(tmp_path), store, Audit(), tmp_path / "state")
    started(life)
    life.observe(window(1001, 450, version=1, right=0.7, seed=9))
    life.rollback()
    life.commit(1e9)
    assert store.current() == 1 and store.get(2).status == "shadow"


def test_a_challenger_that_cannot_score_live_rows_is_rejected(tmp_path: Path, store: ModelStore) -> None:
    x, y = data(100, 10)
    store.register(LogisticRegression().fit(x.assign(x2=1.0), y), metrics={}, status="shadow")  # needs x2
    life = ModelLifecycle(cfg(tmp_path), store, Audit(), tmp_path / "state")
    started(life)
    run(life, window(1001, 100, version=1, right=0.7, seed=11))
    assert store.get(3).status == "rejected" and store.current() == 1
    assert "failed to score" in store.get(3).meta["lifecycle"]["decision"]["reason"]


def test_a_for_span_decides_once_the_log_passes_it(tmp_path: Path, store: ModelStore) -> None:
    life = ModelLifecycle(cfg(tmp_path, shadow={"for": "10m"}), store, Audit(), tmp_path / "state")
    started(life)
    run(life, window(1001, 500, version=1, right=0.7, seed=12))
    assert store.get(2).status == "shadow"  # the log is at 1500 < 1000 + 600
    run(life, window(1501, 200, version=1, right=0.7, seed=13), now=2e9)
    rec = store.get(2).meta["lifecycle"]
    assert store.current() == 2 and rec["comparison"]["rows"] == 599  # rows in (1000, 1600)


def promoted(tmp_path: Path, store: ModelStore, audit: Audit, **lifecycle: Any) -> ModelLifecycle:
    life = ModelLifecycle(cfg(tmp_path, **lifecycle), store, audit, tmp_path / "state")
    started(life)
    run(life, window(1001, 450, version=1, right=0.7, seed=14))
    assert store.current() == 2
    return life


def test_a_regressing_champion_is_rolled_back_once_audited_and_reversibly(tmp_path: Path, store: ModelStore) -> None:
    audit = Audit()
    life = promoted(tmp_path, store, audit, rollback_min_rows=200)
    run(life, window(1500, 150, version=2, right=0.3, seed=15), now=2e9)
    assert store.current() == 2  # 150 rows < rollback_min_rows
    assert store.get(2).meta["lifecycle"]["watch"]["rows"] == 150  # progress shown on the card
    run(life, window(1700, 150, version=2, right=0.3, seed=16), now=3e9)
    rec = store.get(2).meta["lifecycle"]
    assert store.current() == 1 and rec["state"] == "rolled_back" and rec["watch"]["outcome"] == "rolled_back"
    assert rec["watch"]["high"] < rec["watch"]["baseline"] - 0.05 and "regression" in rec["watch"]["reason"]
    assert audit.kinds == ["model_promoted", "model_rolled_back"]
    assert [(h["version"], h["kind"]) for h in store.history()][-1] == (1, "rollback")
    run(life, window(2000, 300, version=1, right=0.3, seed=17), now=4e9)
    assert store.current() == 1 and audit.kinds == ["model_promoted", "model_rolled_back"]  # never twice
    assert store.promote(2).current  # reversible by hand: v2 was served, it can be again


def test_a_champion_that_holds_up_ends_its_watch(tmp_path: Path, store: ModelStore) -> None:
    audit = Audit()
    life = promoted(tmp_path, store, audit)
    run(life, window(1500, 300, version=2, right=0.95, seed=18), now=2e9)
    run(life, window(1500 + 3700, 50, version=2, right=0.95, seed=19), now=3e9)  # past the hour
    rec = store.get(2).meta["lifecycle"]
    assert store.current() == 2 and rec["state"] == "watched" and rec["watch"]["outcome"] == "passed"
    assert math.isclose(rec["watch"]["value"], 0.95, abs_tol=0.05)


def test_a_crash_between_the_registry_write_and_the_audit_write_leaves_one_champion(
    tmp_path: Path, store: ModelStore
) -> None:
    life = ModelLifecycle(cfg(tmp_path), store, Audit(fail_on="model_promoted"), tmp_path / "state")
    started(life)
    with pytest.raises(RuntimeError, match="killed"):
        run(life, window(1001, 450, version=1, right=0.7, seed=20))
    assert store.current() == 2 and store.get(2).meta["lifecycle"]["state"] == "promoting"
    audit = Audit()
    restarted = ModelLifecycle(cfg(tmp_path), store, audit, tmp_path / "state")
    run(restarted, now=5e9)
    assert store.current() == 2 and [v.number for v in store.list_versions() if v.current] == [2]
    assert audit.kinds == ["model_promoted"] and store.get(2).meta["lifecycle"]["state"] == "watching"
    assert [h["kind"] for h in store.history()] == ["promote", "promote"]  # not promoted a second time


def test_paired_scores_append_and_a_pair_cut_off_by_a_crash_is_dropped(tmp_path: Path) -> None:
    from aiopsd.sources.predictions.shadow_state import Paired

    p = Paired(tmp_path / "s.f8")
    p.pending.append((np.array([1.0, 0.0]), np.array([1.0, 1.0])))
    p.commit()
    p.pending.append((np.array([0.0]), np.array([1.0])))
    p.commit()
    with (tmp_path / "s.f8").open("ab") as fh:
        fh.write(np.array([1.0]).tobytes())  # half a pair
    back = Paired.load(tmp_path / "s.f8")
    champion, challenger = back.arrays()
    assert back.rows == 3 and champion.tolist() == [1.0, 0.0, 0.0] and challenger.tolist() == [1.0, 1.0, 1.0]


def test_without_auto_rollback_a_regression_is_recorded_and_nothing_moves(tmp_path: Path, store: ModelStore) -> None:
    audit = Audit()
    life = promoted(tmp_path, store, audit, auto_rollback=False, rollback_min_rows=100)
    run(life, window(1500, 300, version=2, right=0.3, seed=21), now=2e9)
    run(life, window(1800, 10, version=2, right=0.3, seed=22), now=3e9)
    watch = store.get(2).meta["lifecycle"]["watch"]
    assert store.current() == 2 and watch["outcome"] == "regressed (auto_rollback off)"
    assert audit.kinds == ["model_promoted"]


def test_watch_on_estimated_rolls_back_on_the_estimate_before_labels(tmp_path: Path, store: ModelStore) -> None:
    life_cfg = {"shadow": {"rows": 400}, "min_improvement": 0.05, "watch_after_promotion": "1h"}
    life_cfg.update(watch_on="estimated", rollback_min_rows=100)
    log = PredictionLogConfig(
        model="m",
        path=str(tmp_path / "log.jsonl"),
        model_dir=tmp_path / "models",
        estimate={"metric": "accuracy"},
        lifecycle=life_cfg,
    )
    audit = Audit()
    life = ModelLifecycle(log, store, audit, tmp_path / "state")
    started(life)
    run(life, window(1001, 450, version=1, right=0.7, seed=23))
    assert store.current() == 2
    life.refresh(2e9)
    mixed = window(1500, 150, version=2, right=0.9, seed=24)
    life.estimated(PredictionWindow("predictions", mixed.start, mixed.end, mixed.frame, ("m",), ("1", "2")), 0.1)
    life.observe(window(1700, 150, version=2, right=0.95, seed=25))  # realised labels do not count here
    life.commit(2e9)
    assert store.current() == 2  # the mixed-version window did not count, the labels are not watched
    life.estimated(window(1900, 150, version=2, right=0.9, seed=26), 0.3)
    life.commit(3e9)
    rec = store.get(2).meta["lifecycle"]
    assert store.current() == 1 and rec["state"] == "rolled_back" and rec["watch"]["value"] == pytest.approx(0.3)
    assert audit.kinds == ["model_promoted", "model_rolled_back"]
