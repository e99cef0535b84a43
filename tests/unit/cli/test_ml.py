"""``aiopsd drift check`` and ``aiopsd model ...`` through typer's CliRunner, on real files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier
from typer.testing import CliRunner

from aiopsd.cli.ml import create_drift_app, create_model_app
from aiopsd.model_store.directory import DirectoryStore

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df: pd.DataFrame = sm.datasets.fair.load_pandas().data.sample(frac=1.0, random_state=0)
    df["occupation"] = df["occupation"].astype(int).map(lambda v: f"job{v}")
    d = tmp_path_factory.mktemp("drift")
    df.iloc[:3000].to_csv(d / "ref.csv", index=False)
    df.iloc[3000:3200].to_csv(d / "same.csv", index=False)
    shifted = df.iloc[3200:3400].copy()
    shifted["age"] += 0.5 * df["age"].std()
    shifted.to_csv(d / "shifted.csv", index=False)
    return d / "ref.csv", d / "same.csv", d / "shifted.csv"


def test_drift_check_json_one_line_per_file(files: tuple[Path, Path, Path]) -> None:
    ref, same, shifted = files
    res = runner.invoke(
        create_drift_app(), ["check", "--reference", str(ref), str(same), str(shifted), "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert [x["current"] for x in lines] == [str(same), str(shifted)]
    assert [x["drift"] for x in lines] == [False, True]
    age = lines[1]["columns"]["age"]
    assert age["drift"] is True and age["test"] in {"ks", "rank-sum", "point-mass"} and age["p_value"] < 0.005
    assert set(lines[0]["columns"]["occupation"]) >= {"test", "statistic", "p_value", "drift"}
    assert lines[0]["columns"]["occupation"]["test"] in {"chi2", "cells", "missing-rate"}


def test_drift_check_table_and_fail_on_drift(files: tuple[Path, Path, Path]) -> None:
    ref, _, shifted = files
    res = runner.invoke(create_drift_app(), ["check", "-r", str(ref), str(shifted), "--fail-on-drift"])
    assert res.exit_code == 1
    assert "DRIFT" in res.output and "age" in res.output


def test_drift_check_missing_file_is_one_clear_error(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ref, _, _ = files
    res = runner.invoke(create_drift_app(), ["check", "-r", str(ref), str(tmp_path / "nope.csv")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_model_list_promote_rollback(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    d = tmp_path / "models"
    for depth in (1, 2):
        DirectoryStore(d).register(DecisionTreeClassifier(max_depth=depth).fit(x, y), metrics={"metric": "accuracy"})
    assert runner.invoke(create_model_app(), ["promote", "1", "--model-dir", str(d)]).exit_code == 0
    res = runner.invoke(create_model_app(), ["promote", "2", "--model-dir", str(d)])
    assert res.exit_code == 0 and "serving" in res.output
    res = runner.invoke(create_model_app(), ["list", "-d", str(d), "--format", "json"])
    listed = [json.loads(x) for x in res.output.splitlines()]
    assert [(v["version"], v["current"]) for v in listed] == [(1, False), (2, True)]
    res = runner.invoke(create_model_app(), ["rollback", "--model-dir", str(d)])
    assert res.exit_code == 0 and DirectoryStore(d).current() == 1
    res = runner.invoke(create_model_app(), ["rollback", "--model-dir", str(d)])
    assert res.exit_code == 2 and "no earlier served version" in res.output
    assert "current" in runner.invoke(create_model_app(), ["list", "-d", str(d)]).output


def test_model_retrain_command_promotes_through_the_gate(tmp_path: Path) -> None:
    bunch = load_iris(as_frame=True)
    df = bunch.frame.sample(frac=1.0, random_state=1)
    d = tmp_path / "models"
    few = df.iloc[:6]
    weak = DecisionTreeClassifier(max_depth=1, random_state=0).fit(few.drop(columns="target"), few["target"])
    DirectoryStore(d).promote(DirectoryStore(d).register(weak, metrics={}).number)
    data = tmp_path / "recent.csv"
    df.iloc[6:].to_csv(data, index=False)
    res = runner.invoke(
        create_model_app(), ["retrain", "-d", str(d), "--data", str(data), "--label", "target", "--timeout", "120"]
    )
    assert res.exit_code == 0, res.output
    assert "promoted" in res.output and DirectoryStore(d).current() == 2


def test_model_commands_name_one_store_and_report_an_unreachable_mlflow(tmp_path: Path) -> None:
    from aiopsd.demo.stack import free_port

    res = runner.invoke(create_model_app(), ["list"])
    assert res.exit_code == 2 and "name one model store" in res.output
    res = runner.invoke(create_model_app(), ["list", "-d", str(tmp_path), "--mlflow", "http://127.0.0.1:1"])
    assert res.exit_code == 2 and "name one model store" in res.output
    res = runner.invoke(create_model_app(), ["list", "--mlflow", "http://127.0.0.1:1"])
    assert res.exit_code == 2 and "--mlflow needs --name" in res.output
    down = f"http://127.0.0.1:{free_port()}"
    res = runner.invoke(
        create_model_app(),
        ["promote", "1", "--mlflow", down, "--name", "churn"],
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
    )
    assert res.exit_code == 2, res.output
    assert f"mlflow:churn@champion ({down})" in res.output and "Traceback" not in res.output


def test_model_commands_use_the_store_of_a_configured_prediction_log(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    store = DirectoryStore(tmp_path / "models" / "iris")
    store.promote(store.register(DecisionTreeClassifier(max_depth=1).fit(x, y), metrics={}).number)
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(
        "prediction_logs:\n  - {model: iris, path: logs/*.jsonl, model_store: {kind: directory, path: models/iris}}\n"
    )
    res = runner.invoke(create_model_app(), ["list", "--config", str(cfg), "--model", "iris", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["current"] for line in res.output.splitlines()] == [True]
    res = runner.invoke(create_model_app(), ["list", "--config", str(cfg), "--model", "nope"])
    assert res.exit_code == 2 and "no prediction log for model 'nope'; known: iris" in res.output
