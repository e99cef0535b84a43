"""Versioned model directory and gated retraining, with real files and real scikit-learn models."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from aiopsd.actions import model_registry as reg
from aiopsd.actions.retrain import RetrainParams, retrain_job, run_retrain

Frame = pd.DataFrame


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    bunch = load_breast_cancer(as_frame=True)
    df: pd.DataFrame = bunch.frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    df.columns = [c.replace(" ", "_") for c in df.columns]
    return df


def features(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c != "target"]


def weak_model(df: pd.DataFrame) -> Pipeline:
    """A pipeline fitted on 12 rows only: a fresh fit on more data should beat it."""
    few = df.iloc[:12]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    return pipe.fit(few[features(df)], few["target"])


@pytest.fixture
def model_dir(tmp_path: Path, cancer: pd.DataFrame) -> Path:
    d = tmp_path / "models"
    v = reg.add_version(d, weak_model(cancer), metrics={"note": "seed"})
    reg.promote(d, v.number)
    return d


def test_versions_promote_and_rollback_walk_back(tmp_path: Path, cancer: pd.DataFrame) -> None:
    d = tmp_path / "m"
    for _ in range(3):
        reg.add_version(d, weak_model(cancer), metrics={})
    assert reg.current_version(d) is None
    for n in (1, 2, 3):
        reg.promote(d, n)
    assert os.readlink(d / "current") == os.path.join("versions", "3")
    assert [v.current for v in reg.list_versions(d)] == [False, False, True]
    assert reg.rollback(d).number == 2
    assert reg.rollback(d).number == 1
    with pytest.raises(reg.RegistryError, match="no earlier served version"):
        reg.rollback(d)
    number, model = reg.load_current(d)
    assert number == 1 and model.predict(cancer[features(cancer)].iloc[:5]).shape == (5,)


def test_rejected_version_is_never_served(tmp_path: Path, cancer: pd.DataFrame) -> None:
    d = tmp_path / "m"
    v = reg.add_version(d, weak_model(cancer), metrics={"accuracy": 0.1}, status="rejected")
    with pytest.raises(reg.RegistryError, match="rejected"):
        reg.promote(d, v.number)
    assert reg.current_version(d) is None
    assert reg.list_versions(d)[0].metrics == {"accuracy": 0.1}


def write_data(tmp_path: Path, df: pd.DataFrame) -> Path:
    path = tmp_path / "recent.csv"
    df.assign(timestamp=np.arange(len(df))).to_csv(path, index=False)
    return path


def test_gate_promotes_a_better_candidate(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    params = RetrainParams(model_dir=model_dir, data_path=write_data(tmp_path, cancer.iloc[12:]),
                           label="target", features=features(cancer))
    res = retrain_job(params, tmp_path)
    assert res.status == "promoted" and res.promoted and res.candidate_version == 2
    assert res.candidate_score is not None and res.current_score is not None
    assert res.candidate_score >= res.current_score
    assert reg.current_version(model_dir) == 2
    stored = reg.get_version(model_dir, 2)
    assert stored.metrics["holdout"]["candidate"] == res.candidate_score and stored.meta["parent"] == 1


def test_gate_rejects_and_keeps_serving_current(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    params = RetrainParams(model_dir=model_dir, data_path=write_data(tmp_path, cancer.iloc[12:]),
                           label="target", features=features(cancer), min_improvement=0.5)  # cannot be met
    res = retrain_job(params, tmp_path)
    assert res.status == "rejected" and not res.promoted
    assert reg.current_version(model_dir) == 1
    rejected = reg.get_version(model_dir, res.candidate_version or 0)
    assert rejected.status == "rejected" and rejected.metrics["improvement"] == res.improvement
    assert "gate failed" in res.message


def test_run_retrain_in_a_subprocess(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    params = RetrainParams(model_dir=model_dir, data_path=write_data(tmp_path, cancer.iloc[12:]),
                           label="target", features=features(cancer), metric="f1")
    res = run_retrain(params, timeout=120)
    assert res.status == "promoted", res.output
    assert reg.current_version(model_dir) == 2 and res.metric == "f1"


def test_configured_command_goes_through_the_same_gate(model_dir: Path, tmp_path: Path,
                                                       cancer: pd.DataFrame) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        "import os, joblib, pandas as pd\n"
        "from sklearn.tree import DecisionTreeClassifier\n"
        "df = pd.read_csv(os.environ['AIOPSD_TRAIN_DATA'])\n"
        "X = df.drop(columns=['target', 'timestamp'])\n"
        "model = DecisionTreeClassifier(max_depth=1).fit(X, df['target'])\n"
        "joblib.dump(model, os.environ['AIOPSD_CANDIDATE'])\n")
    params = RetrainParams(model_dir=model_dir, data_path=write_data(tmp_path, cancer.iloc[12:]),
                           label="target", features=features(cancer), job="command",
                           command=[sys.executable, str(script)], min_improvement=0.2)
    res = run_retrain(params, timeout=120)
    assert res.status == "rejected", res.output  # a stump is not 0.2 accuracy better than the current model
    assert reg.current_version(model_dir) == 1
    assert isinstance(joblib.load(reg.get_version(model_dir, 2).path / "model.joblib").max_depth, int)


def test_timeout_kills_the_whole_process_group(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    pidfile = tmp_path / "child.pid"
    cmd = ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"]
    params = RetrainParams(model_dir=model_dir, data_path=write_data(tmp_path, cancer.iloc[12:]),
                           label="target", job="command", command=cmd)
    started = time.monotonic()
    res = run_retrain(params, timeout=10)
    assert res.status == "timed_out" and time.monotonic() - started < 40
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the job's grandchild outlived the timeout")
    assert [v.number for v in reg.list_versions(model_dir)] == [1]


def test_failure_is_reported_not_raised(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    params = RetrainParams(model_dir=model_dir, data_path=write_data(tmp_path, cancer.iloc[12:]),
                           label="nope")
    res = run_retrain(params, timeout=60)
    assert res.status == "failed" and "no label column 'nope'" in res.message


def test_cancel_kills_the_retrain_and_everything_it_started(model_dir: Path, tmp_path: Path,
                                                            cancer: Frame) -> None:
    """SIGTERM's drain cancels a retrain like a playbook: at once, its whole tree, status canceled."""
    pidfile = tmp_path / "child.pid"
    # The grandchild leaves the job's session: only the run's environment marker still finds it.
    cmd = ["sh", "-c", f"setsid sleep 300 & echo $! > {pidfile}; wait"]
    params = RetrainParams(model_dir=model_dir, data_path=write_data(tmp_path, cancer.iloc[12:]),
                           label="target", job="command", command=cmd)
    cancel = threading.Event()

    def cancel_once_started() -> None:  # the drain's cancel, once the job's tree is up
        deadline = time.monotonic() + 120
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        cancel.set()

    threading.Thread(target=cancel_once_started, daemon=True).start()
    started = time.monotonic()
    res = run_retrain(params, timeout=600, cancel=cancel)
    assert res.status == "canceled", res
    assert time.monotonic() - started < 180  # not the 600 s timeout
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the retrain's detached grandchild outlived the cancel")
    assert [v.number for v in reg.list_versions(model_dir)] == [1]
