"""Retrain into a REAL MLflow server, lineage, a serving process that only knows ``models:/NAME@champion``,
reproduction from the lineage, and promotions killed half-way (both backends)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from aiopsd.actions.retrain import RetrainParams, retrain_job
from aiopsd.cli.ml import create_model_app
from aiopsd.demo.mlflow_server import MlflowServer
from aiopsd.model_store import ModelStore, StoreSpec, open_store
from aiopsd.model_store import lineage as lin
from tests.support import tool_env

# A real mlflow server (started once per session, slow on a loaded machine) and serving subprocesses.
pytestmark = pytest.mark.timeout(900)
_names = itertools.count(1)


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    df: pd.DataFrame = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0)
    df.columns = [c.replace(" ", "_") for c in df.columns]
    return df.reset_index(drop=True)


def features(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c != "target"]


def seed(store: ModelStore, df: pd.DataFrame) -> None:
    few = df.iloc[:12]
    weak = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(few[features(df)], few["target"])
    store.promote(store.register(weak, metrics={"note": "seed"}).number)


def mlflow_spec(server: MlflowServer) -> StoreSpec:
    return StoreSpec(kind="mlflow", tracking_uri=server.url, name=f"churn-{next(_names)}")


SERVE = textwrap.dedent("""
    import json, sys
    import mlflow.pyfunc, pandas as pd
    model = mlflow.pyfunc.load_model(sys.argv[1])
    rows = pd.read_csv(sys.argv[2])
    assert not any(m.startswith("aiopsd") for m in sys.modules), "the serving process must not need aiopsd"
    print(json.dumps({"run_id": model.metadata.run_id, "predictions": [int(p) for p in model.predict(rows)]}))
""")


def serve(server: MlflowServer, name: str, rows: Path) -> dict[str, object]:
    """What an MLflow serving process that knows nothing of aiopsd loads for ``models:/NAME@champion``."""
    env = {**tool_env(), "MLFLOW_TRACKING_URI": server.url, "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", SERVE, f"models:/{name}@champion", str(rows)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_retrain_registers_with_lineage_and_the_serving_process_follows_the_alias(
    mlflow_server: MlflowServer, cancer: pd.DataFrame, tmp_path: Path
) -> None:
    spec = mlflow_spec(mlflow_server)
    assert spec.name is not None
    store = open_store(spec)
    seed(store, cancer)
    rows = tmp_path / "rows.csv"
    cancer[features(cancer)].iloc[300:].to_csv(rows, index=False)
    before = serve(mlflow_server, spec.name, rows)
    assert before["run_id"] == store.get(1).meta["run_id"]

    data = tmp_path / "recent.csv"
    cancer.iloc[12:300].assign(timestamp=np.arange(288)).to_csv(data, index=False)
    res = retrain_job(RetrainParams(store=spec, state_dir=tmp_path / "state", data_path=data, label="target"), tmp_path)
    assert res.status == "promoted" and res.candidate_version == 2 and store.current() == 2

    after = serve(mlflow_server, spec.name, rows)  # the same URI now resolves to the retrained version
    assert after["run_id"] == store.get(2).meta["run_id"] and after["predictions"] != before["predictions"]

    lineage = store.get(2).meta["lineage"]
    table = Path(lineage["table"]["path"])
    assert table.parent == tmp_path / "state" / "training" and lin.file_sha256(table) == lineage["table"]["sha256"]
    assert lineage["rows"] == res.rows_train and lineage["parent"] == 1 and lineage["label"] == "target"
    assert lineage["time_window"] == {"start": "0", "end": str(res.rows_train - 1)}
    assert lineage["sources"] == [
        {"path": str(data), "bytes": [0, data.stat().st_size], "sha256": lin.file_sha256(data)}
    ]
    assert [f["name"] for f in lineage["features"]] == features(cancer) and lineage["code"]["scikit-learn"]

    run = MlflowClient(mlflow_server.url).get_run(str(store.get(2).meta["run_id"]))
    assert run.data.params["data_sha256"] == lineage["table"]["sha256"] and run.data.params["parent"] == "1"
    assert run.data.tags["aiopsd.data_sha256"] == lineage["table"]["sha256"]
    assert "holdout.candidate" in run.data.metrics
    assert run.inputs is not None
    logged = run.inputs.dataset_inputs
    assert len(logged) == 1 and logged[0].dataset.source and str(table) in logged[0].dataset.source

    shown = CliRunner().invoke(create_model_app(), ["show", "2", "--mlflow", mlflow_server.url, "--name", spec.name])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["lineage"]["table"]["sha256"] == lineage["table"]["sha256"]

    x = cancer[features(cancer)].iloc[300:]
    _, served = store.load(2)
    assert np.array_equal(lin.reproduce(store, 2).predict(x), served.predict(x))

    back = CliRunner().invoke(create_model_app(), ["rollback", "--mlflow", mlflow_server.url, "--name", spec.name])
    assert back.exit_code == 0, back.output
    assert serve(mlflow_server, spec.name, rows) == before


def test_a_rejected_candidate_never_gets_the_alias(
    mlflow_server: MlflowServer, cancer: pd.DataFrame, tmp_path: Path
) -> None:
    spec = mlflow_spec(mlflow_server)
    store = open_store(spec)
    seed(store, cancer)
    data = tmp_path / "recent.csv"
    cancer.iloc[12:300].to_csv(data, index=False)
    res = retrain_job(
        RetrainParams(store=spec, state_dir=tmp_path, data_path=data, label="target", min_improvement=0.9), tmp_path
    )
    assert res.status == "rejected" and store.current() == 1
    assert store.get(2).status == "rejected"
    listed = CliRunner().invoke(
        create_model_app(), ["promote", "2", "--mlflow", mlflow_server.url, "--name", str(spec.name)]
    )
    assert listed.exit_code == 2 and "rejected" in listed.output and store.current() == 1


CRASH = textwrap.dedent("""
    import os, signal, sys
    from aiopsd.model_store import StoreSpec, open_store
    store = open_store(StoreSpec.model_validate_json(sys.argv[1]))
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(type(store), sys.argv[2], die)
    store.promote(2)
""")


@pytest.mark.parametrize("kind", ["directory", "mlflow"])
@pytest.mark.parametrize(("killed_in", "served_after"), [("_switch", 1), ("_append_history", 2)])
def test_killed_promotion_leaves_exactly_one_champion(
    kind: str, killed_in: str, served_after: int, request: pytest.FixtureRequest, cancer: pd.DataFrame, tmp_path: Path
) -> None:
    """SIGKILL before the registry write (``_switch``) or between it and the audit write (``_append_history``)."""
    spec = (
        mlflow_spec(request.getfixturevalue("mlflow_server"))
        if kind == "mlflow"
        else StoreSpec(kind="directory", path=tmp_path / "models")
    )
    store = open_store(spec)
    seed(store, cancer)
    store.register(open_store(spec).load(1)[1], metrics={})
    done = subprocess.run(
        [sys.executable, "-c", CRASH, spec.model_dump_json(), killed_in],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == -9, done.stderr[-2000:]
    assert store.current() == served_after
    assert [v.number for v in store.list_versions() if v.current] == [served_after]
    assert store.load()[0] == served_after
    if served_after == 2:  # the audit line was lost; rollback still knows 1 was served before
        assert [h["version"] for h in store.history()] == [1]
        assert store.rollback().number == 1
    else:
        with pytest.raises(Exception, match="no earlier served version"):
            store.rollback()
