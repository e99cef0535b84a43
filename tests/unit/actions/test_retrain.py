"""Versioned model directory and gated retraining, with real files and real scikit-learn models."""

from __future__ import annotations

import json
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

from aiopsd.actions.retrain import RetrainParams, retrain_job, run_retrain
from aiopsd.model_store import RegistryError
from aiopsd.model_store import lineage as lin
from aiopsd.model_store.directory import DirectoryStore

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
    v = DirectoryStore(d).register(weak_model(cancer), metrics={"note": "seed"})
    DirectoryStore(d).promote(v.number)
    return d


def test_versions_promote_and_rollback_walk_back(tmp_path: Path, cancer: pd.DataFrame) -> None:
    d = tmp_path / "m"
    for _ in range(3):
        DirectoryStore(d).register(weak_model(cancer), metrics={})
    assert DirectoryStore(d).current() is None
    for n in (1, 2, 3):
        DirectoryStore(d).promote(n)
    assert os.readlink(d / "current") == os.path.join("versions", "3")
    assert [v.current for v in DirectoryStore(d).list_versions()] == [False, False, True]
    assert DirectoryStore(d).rollback().number == 2
    assert DirectoryStore(d).rollback().number == 1
    with pytest.raises(RegistryError, match="no earlier served version"):
        DirectoryStore(d).rollback()
    number, model = DirectoryStore(d).load()
    assert number == 1 and model.predict(cancer[features(cancer)].iloc[:5]).shape == (5,)


def test_rejected_version_is_never_served(tmp_path: Path, cancer: pd.DataFrame) -> None:
    d = tmp_path / "m"
    v = DirectoryStore(d).register(weak_model(cancer), metrics={"accuracy": 0.1}, status="rejected")
    with pytest.raises(RegistryError, match="rejected"):
        DirectoryStore(d).promote(v.number)
    assert DirectoryStore(d).current() is None
    assert DirectoryStore(d).list_versions()[0].metrics == {"accuracy": 0.1}


def write_data(tmp_path: Path, df: pd.DataFrame) -> Path:
    path = tmp_path / "recent.csv"
    df.assign(timestamp=np.arange(len(df))).to_csv(path, index=False)
    return path


def test_gate_promotes_a_better_candidate(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    params = RetrainParams(
        model_dir=model_dir, data_path=write_data(tmp_path, cancer.iloc[12:]), label="target", features=features(cancer)
    )
    res = retrain_job(params, tmp_path)
    assert res.status == "promoted" and res.promoted and res.candidate_version == 2
    assert res.candidate_score is not None and res.current_score is not None
    assert res.candidate_score >= res.current_score
    assert DirectoryStore(model_dir).current() == 2
    stored = DirectoryStore(model_dir).get(2)
    assert stored.metrics["holdout"]["candidate"] == res.candidate_score and stored.meta["parent"] == 1


def test_gate_rejects_and_keeps_serving_current(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    params = RetrainParams(
        model_dir=model_dir,
        data_path=write_data(tmp_path, cancer.iloc[12:]),
        label="target",
        features=features(cancer),
        min_improvement=0.5,
    )  # cannot be met
    res = retrain_job(params, tmp_path)
    assert res.status == "rejected" and not res.promoted
    assert DirectoryStore(model_dir).current() == 1
    rejected = DirectoryStore(model_dir).get(res.candidate_version or 0)
    assert rejected.status == "rejected" and rejected.metrics["improvement"] == res.improvement
    assert "gate failed" in res.message


def test_run_retrain_in_a_subprocess(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    params = RetrainParams(
        model_dir=model_dir,
        data_path=write_data(tmp_path, cancer.iloc[12:]),
        label="target",
        features=features(cancer),
        metric="f1",
    )
    res = run_retrain(params, timeout=120)
    assert res.status == "promoted", res.output
    assert DirectoryStore(model_dir).current() == 2 and res.metric == "f1"


def test_configured_command_goes_through_the_same_gate(model_dir: Path, tmp_path: Path, cancer: pd.DataFrame) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        "import os, joblib, pandas as pd\n"
        "from sklearn.tree import DecisionTreeClassifier\n"
        "df = pd.read_csv(os.environ['AIOPSD_TRAIN_DATA'])\n"
        "X = df.drop(columns=['target', 'timestamp'])\n"
        "model = DecisionTreeClassifier(max_depth=1).fit(X, df['target'])\n"
        "joblib.dump(model, os.environ['AIOPSD_CANDIDATE'])\n"
    )
    params = RetrainParams(
        model_dir=model_dir,
        data_path=write_data(tmp_path, cancer.iloc[12:]),
        label="target",
        features=features(cancer),
        job="command",
        command=[sys.executable, str(script)],
        min_improvement=0.2,
    )
    res = run_retrain(params, timeout=120)
    assert res.status == "rejected", res.output  # a stump is not 0.2 accuracy better than the current model
    assert DirectoryStore(model_dir).current() == 1
    assert isinstance(joblib.load(DirectoryStore(model_dir).version_dir(2) / "model.joblib").max_depth, int)


def test_timeout_kills_the_whole_process_group(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    pidfile = tmp_path / "child.pid"
    cmd = ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"]
    params = RetrainParams(
        model_dir=model_dir,
        data_path=write_data(tmp_path, cancer.iloc[12:]),
        label="target",
        job="command",
        command=cmd,
    )
    started = time.monotonic()
    # 30 s: on a loaded machine the job needs more than 10 s to import, load the model and reach the command.
    res = run_retrain(params, timeout=30)
    assert res.status == "timed_out" and time.monotonic() - started < 90
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
    assert [v.number for v in DirectoryStore(model_dir).list_versions()] == [1]


def test_failure_is_reported_not_raised(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    params = RetrainParams(model_dir=model_dir, data_path=write_data(tmp_path, cancer.iloc[12:]), label="nope")
    res = run_retrain(params, timeout=60)
    assert res.status == "failed" and "no label column 'nope'" in res.message


def test_lineage_names_the_kept_table_and_reproduces_the_model(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    data = write_data(tmp_path, cancer.iloc[12:])
    params = RetrainParams(model_dir=model_dir, state_dir=tmp_path / "state", data_path=data, label="target")
    res = retrain_job(params, tmp_path)
    store = DirectoryStore(model_dir)
    meta = store.get(2).meta
    lineage = meta["lineage"]
    assert lineage == json.loads((model_dir / "versions" / "2" / "meta.json").read_text())["lineage"]
    table = Path(lineage["table"]["path"])
    assert table.parent == tmp_path / "state" / "training" and table.name == f"{lineage['table']['sha256']}.csv"
    assert lin.file_sha256(table) == lineage["table"]["sha256"]
    assert lineage["rows"] == res.rows_train == len(pd.read_csv(table)) and lineage["parent"] == 1
    assert lineage["sources"][0] == {
        "path": str(data),
        "bytes": [0, data.stat().st_size],
        "sha256": lin.file_sha256(data),
    }
    assert lineage["features"][0] == {"name": "mean_radius", "dtype": "float64"}
    assert [f["name"] for f in lineage["features"]] == features(cancer) and lineage["estimator"] == "Pipeline"
    x = cancer[features(cancer)]
    assert np.array_equal(lin.reproduce(store, 2).predict_proba(x), store.load(2)[1].predict_proba(x))
    table.write_text(table.read_text().replace("1", "0", 1))
    with pytest.raises(RegistryError, match="does not match its recorded sha256"):
        lin.reproduce(store, 2)


def test_model_show_prints_the_lineage(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    from typer.testing import CliRunner

    from aiopsd.cli.ml import create_model_app

    retrain_job(
        RetrainParams(model_dir=model_dir, data_path=write_data(tmp_path, cancer.iloc[12:]), label="target"), tmp_path
    )
    res = CliRunner().invoke(create_model_app(), ["show", "2", "-d", str(model_dir)])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert shown["parent"] == 1 and shown["lineage"]["table"]["path"].startswith(str(model_dir / "training"))
    assert shown["lineage"]["code"]["aiopsd"] and shown["metrics"]["metric"] == "accuracy"
    missing = CliRunner().invoke(create_model_app(), ["show", "9", "-d", str(model_dir)])
    assert missing.exit_code == 2 and "no version 9" in missing.output


def test_cancel_kills_the_retrain_and_everything_it_started(model_dir: Path, tmp_path: Path, cancer: Frame) -> None:
    """SIGTERM's drain cancels a retrain like a playbook: at once, its whole tree, status canceled."""
    pidfile = tmp_path / "child.pid"
    # The grandchild leaves the job's session: only the run's environment marker still finds it.
    cmd = ["sh", "-c", f"setsid sleep 300 & echo $! > {pidfile}; wait"]
    params = RetrainParams(
        model_dir=model_dir,
        data_path=write_data(tmp_path, cancer.iloc[12:]),
        label="target",
        job="command",
        command=cmd,
    )
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
    assert [v.number for v in DirectoryStore(model_dir).list_versions()] == [1]


def test_with_shadow_a_passed_candidate_waits_beside_the_champion(
    model_dir: Path, tmp_path: Path, cancer: Frame
) -> None:
    data = write_data(tmp_path, cancer.iloc[12:])
    params = RetrainParams(model_dir=model_dir, data_path=data, label="target", features=features(cancer), shadow=True)
    first = retrain_job(params, tmp_path)
    assert first.status == "shadow" and not first.promoted and "in shadow" in first.message
    store = DirectoryStore(model_dir)
    assert store.current() == 1 and store.get(2).status == "shadow"
    second = retrain_job(params, tmp_path)  # a newer challenger supersedes the one in shadow
    assert second.status == "shadow" and store.current() == 1
    assert [v.status for v in store.list_versions()] == ["promoted", "rejected", "shadow"]
    assert "superseded by v3" in store.get(2).meta["lifecycle"]["decision"]["reason"]
