"""The model lifecycle end to end on a REAL MLflow server: drift -> retrain -> register -> shadow on live
logged rows -> promote the alias -> regression -> automatic rollback.

At every step the test asks MLflow what a serving client resolving ``models:/NAME@champion`` gets
(``get_model_version_by_alias``), and the serving side of the log is played by that client: each
logged row's prediction comes from the model the alias resolves to at that moment.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sklearn.linear_model import LogisticRegression

from aiopsd.actions.retrain import RetrainParams, run_retrain
from aiopsd.config import PredictionLogConfig
from aiopsd.daemon.http.lifecycle import card
from aiopsd.daemon.metrics import Metrics
from aiopsd.demo.mlflow_server import MlflowServer
from aiopsd.demo.stack import free_port
from aiopsd.model_store import StoreSpec, open_store
from aiopsd.models import FindingStatus
from aiopsd.sources.predictions.watch import DriftWatch
from aiopsd.store import StateStore
from tests.e2e.test_status_page import DESKTOP, browser, screenshot, viewport
from tests.support import run_poll, tool_env, wait_for

pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("mlflow")]
__all__ = ["browser"]  # the Chromium fixture of the status page tests
DEMO = [sys.executable, "-m", "aiopsd", "demo", "--model-store", "mlflow", "--duration", "700"]
FEATURES = ["x0", "x1"]
_names = itertools.count(1)


def features(n: int, rng: np.random.Generator, shift: float) -> pd.DataFrame:
    return pd.DataFrame({"x0": rng.normal(shift, 1.0, n), "x1": rng.normal(0.0, 1.0, n)})


class World:
    """The served model (whatever the alias resolves to), its prediction log, and the truth it is judged by."""

    def __init__(self, server: MlflowServer, name: str, log: Path) -> None:
        self.client = MlflowClient(tracking_uri=server.url)
        self.name, self.log, self.t = name, log, time.time() - 50_000.0
        self.rng = np.random.default_rng(0)
        self.ids = itertools.count()

    def champion(self) -> int:
        """What a serving client resolving models:/NAME@champion gets."""
        return int(self.client.get_model_version_by_alias(self.name, "champion").version)

    def serve(self, n: int, *, shift: float, truth: Any) -> None:
        """``n`` requests served by the champion, logged with the label ``truth(x, prediction)``."""
        version = self.champion()
        model = mlflow.sklearn.load_model(f"models:/{self.name}@champion")
        x = features(n, self.rng, shift)
        pred = model.predict(x[FEATURES])
        labels = truth(x, pred)
        with self.log.open("a") as fh:
            for i in range(n):
                self.t += 1.0
                row = {
                    "timestamp": self.t,
                    "model": "churn",
                    "version": str(version),
                    "prediction_id": f"p{next(self.ids)}",
                    "features": {k: float(x[k].iloc[i]) for k in FEATURES},
                    "prediction": int(pred[i]),
                    "label": int(labels[i]),
                }
                fh.write(json.dumps(row) + "\n")


def old_rule(x: pd.DataFrame, _pred: Any) -> Any:
    return (x["x0"] + x["x1"] > 0).astype(int).to_numpy()


def new_rule(x: pd.DataFrame, _pred: Any) -> Any:
    return (x["x0"] + x["x1"] > 1.5).astype(int).to_numpy()


def broken(_x: pd.DataFrame, pred: Any) -> Any:
    """A regression the offline gate could not see: the new champion is now wrong 9 times in 10."""
    flip = np.random.default_rng(9).random(len(pred)) < 0.9
    return np.where(flip, 1 - pred, pred)


def test_drift_retrain_shadow_promote_regress_and_roll_back(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    name = f"lifecycle-{next(_names)}"
    spec = StoreSpec(kind="mlflow", tracking_uri=mlflow_server.url, name=name)
    store = open_store(spec)
    rng = np.random.default_rng(1)
    ref = features(2000, rng, 0.0)
    ref["label"] = old_rule(ref, None)
    v1 = LogisticRegression().fit(ref[FEATURES], ref["label"])
    store.promote(store.register(v1, metrics={"note": "seed"}).number)
    ref.assign(prediction=v1.predict(ref[FEATURES])).to_csv(tmp_path / "ref.csv", index=False)
    log = tmp_path / "churn.jsonl"
    world = World(mlflow_server, name, log)
    assert world.champion() == 1

    cfg = PredictionLogConfig.model_validate(
        {
            "model": "churn",
            "path": str(log),
            "reference": str(tmp_path / "ref.csv"),
            "window": {"rows": 200},
            "reports": False,
            "model_store": spec.model_dump(mode="json"),
            "lifecycle": {
                "shadow": {"rows": 400},
                "min_improvement": 0.05,
                "watch_after_promotion": "2h",
                "rollback_margin": 0.05,
                "rollback_min_rows": 100,
            },
        }
    )
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    watch = DriftWatch(cfg, state, Metrics(), tmp_path / "state")
    clock = itertools.count(int(time.time()), 60)  # each poll a minute later: the store is re-read

    # 1. Drift: the inputs shift and the concept moves; the champion (v1) keeps serving.
    world.serve(400, shift=1.5, truth=new_rule)
    found = run_poll(watch, next(clock))
    drift = [f for f in found if f.status == FindingStatus.FIRING and "test" not in f.labels]
    assert drift and "x0" in drift[0].details["drifted"] and world.champion() == 1

    # 2. Retrain on the drifted window: the candidate passes the offline gate and enters shadow.
    params = RetrainParams(
        store=spec,
        state_dir=tmp_path / "state",
        data_path=Path(drift[0].details["window_csv"]),
        label="label",
        features=FEATURES,
        shadow=True,
    )
    result = run_retrain(params, timeout=600)
    assert result.status == "shadow", result.output
    assert store.get(2).status == "shadow" and world.champion() == 1  # registered, not served

    # 3. Shadow on live logged rows: v1 serves them, v2 is scored beside it.
    run_poll(watch, next(clock))  # sees the challenger; rows logged from now on are its shadow
    world.serve(200, shift=1.5, truth=new_rule)
    run_poll(watch, next(clock))
    rec = store.get(2).meta["lifecycle"]
    assert rec["state"] == "shadow" and rec["comparison"]["rows"] == 200 and world.champion() == 1
    view = card(cfg)
    assert view is not None and view.backend == "mlflow" and view.challenger == 2 and view.state == "shadow"

    # 4. Enough rows: the challenger wins on the bound and the alias moves.
    world.serve(200, shift=1.5, truth=new_rule)
    run_poll(watch, next(clock))
    rec = store.get(2).meta["lifecycle"]
    c = rec["comparison"]
    assert world.champion() == 2 and rec["decision"]["outcome"] == "promote" and rec["state"] == "watching"
    assert c["rows"] == 400 and c["low"] >= 0.05 and c["challenger"] > c["champion"]
    kinds = [e["kind"] for e in state.audit_entries(limit=50)]
    assert "model_promoted" in kinds

    # 5. The new champion regresses in production: rolled back to v1, once, audited.
    run_poll(watch, next(clock))  # reads the promotion: the regression watch starts here
    world.serve(200, shift=1.5, truth=broken)
    run_poll(watch, next(clock))
    assert world.champion() == 1
    rec = store.get(2).meta["lifecycle"]
    assert rec["state"] == "rolled_back" and rec["watch"]["previous"] == 1 and "regression" in rec["watch"]["reason"]
    assert [(h["version"], h["kind"]) for h in store.history()][-1] == (1, "rollback")
    kinds = [e["kind"] for e in state.audit_entries(limit=50)]
    assert kinds.count("model_rolled_back") == 1 and kinds.count("model_promoted") == 1
    world.serve(200, shift=1.5, truth=new_rule)
    run_poll(watch, next(clock))
    assert world.champion() == 1  # one decision: nothing flips back by itself
    view = card(cfg)
    assert view is not None and view.champion == 1 and view.state == "rolled_back" and view.watch is not None
    state.close()


def test_demo_with_mlflow_shows_the_champion_challenger_card_in_chromium(tmp_path: Path, browser: WebDriver) -> None:
    """``aiopsd demo --model-store mlflow``: its own MLflow server, a retrain that goes through shadow,
    and the card on the status page, looked at in a real headless Chromium (screenshot kept)."""
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    out = tmp_path / "demo.out"
    with out.open("wb") as fh:
        demo = subprocess.Popen(
            [*DEMO, "--port", str(port), "--workdir", str(tmp_path / "demo")],
            env=tool_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:

        def decided() -> dict[str, Any] | None:
            assert demo.poll() is None, out.read_text()[-3000:]
            try:
                cards = httpx.get(f"{api}/api/v1/models/lifecycle", timeout=5).json()
            except (httpx.HTTPError, ValueError):
                return None
            settled = ("watching", "watched", "rejected", "rolled_back", "approved", "champion")
            done = [c for c in cards if c["challenger"] is not None and c["state"] in settled]
            return done[0] if done else None

        found: dict[str, Any] = wait_for(decided, 600, interval=2.0, what="a decided challenger")
        assert found["backend"] == "mlflow" and found["comparison"]["rows"] > 0
        viewport(browser, DESKTOP)
        browser.get(f"{api}/#models")
        card = browser.find_element(By.CSS_SELECTOR, "article.lifecycle")
        text = card.text
        if found["champion"] == found["challenger"]:  # promoted
            assert f"champion v{found['champion']}, the challenger promoted over v{found['previous']}" in text
        else:
            assert f"champion v{found['champion']} vs challenger v{found['challenger']}" in text
        assert "rows compared" in text and "advantage [interval]" in text and "mlflow" in text
        assert found["state"].replace("_", " ") in text
        shot = screenshot(browser, "lifecycle-card-1366x768")
        assert shot.stat().st_size > 10_000
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(120)
    narrated = out.read_text()
    assert "in shadow" in narrated and f"churn v{found['challenger']}" in narrated, narrated[-3000:]
