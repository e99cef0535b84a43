"""The Evidently report is rendered for real and says what our detector says on a clear shift."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from aiopsd.reports.evidently_report import render_drift_report, run_data_drift


@pytest.fixture(scope="module")
def fair() -> pd.DataFrame:
    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df: pd.DataFrame = sm.datasets.fair.load_pandas().data
    df["occupation"] = df["occupation"].astype(int).astype(str)
    return df[["age", "yrs_married", "educ", "occupation"]]


def test_report_files_name_the_drifted_column(tmp_path: Path, fair: pd.DataFrame) -> None:
    ref, cur = fair.iloc[:2000], fair.iloc[2000:2300].copy()
    cur["age"] = cur["age"] + 2 * fair["age"].std()
    paths = render_drift_report(ref, cur, tmp_path / "reports", name="churn-w1")
    assert paths.html.name == "churn-w1.html" and paths.html.stat().st_size > 10_000
    doc = json.loads(paths.json.read_text())
    names = [m["metric_name"] for m in doc["metrics"]]
    assert any("column=age" in n for n in names) and any("column=occupation" in n for n in names)
    assert not list((tmp_path / "reports").glob(".*.tmp"))


def test_verdict_reads_evidently_results(fair: pd.DataFrame) -> None:
    ref, cur = fair.iloc[:2000], fair.iloc[2000:2300].copy()
    cur["age"] = cur["age"] + 2 * fair["age"].std()
    v = run_data_drift(ref, cur, categorical=["occupation"])
    assert "age" in v.drifted_columns and v.share >= 0.25
