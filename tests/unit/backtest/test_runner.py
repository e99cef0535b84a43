"""The backtest command on a small NAB slice shipped with the tests (NAB data, MIT licence)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from aiopsd.backtest.data import read_series
from aiopsd.backtest.runner import run_series
from aiopsd.cli import create_app

SLICE = Path(__file__).resolve().parents[2] / "data" / "nab-slice"
EC2 = "realKnownCause/ec2_request_latency_system_failure.csv"


def test_backtest_writes_scores_mirroring_the_input_tree(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        create_app(), ["backtest", "--detector", "default", "--input", str(SLICE / "data"), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    assert written == sorted(["artificialWithAnomaly/art_daily_jumpsup.csv", EC2])
    frame = pd.read_csv(out / EC2)
    source = pd.read_csv(SLICE / "data" / EC2)
    assert list(frame.columns) == ["timestamp", "value", "anomaly_score"]
    assert frame["timestamp"].tolist() == source["timestamp"].tolist()
    np.testing.assert_allclose(frame["value"], source["value"])
    # The file holds exactly what streaming the series through a fresh detector gives.
    expected = run_series("default", read_series(SLICE / "data" / EC2)).anomaly_score
    np.testing.assert_allclose(frame["anomaly_score"], expected)


def test_backtest_with_windows_prints_nab_table_and_plots(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        create_app(),
        [
            "backtest",
            "--detector",
            "default",
            "--input",
            str(SLICE / "data" / EC2),
            "--input",
            str(SLICE / "data" / "artificialWithAnomaly"),
            "--output",
            str(tmp_path / "out"),
            "--windows",
            str(SLICE / "windows.json"),
            "--plot",
            str(tmp_path / "png"),
        ],
    )
    assert result.exit_code == 0, result.output
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert profile in result.output
    assert "2 series" in result.output
    pngs = sorted(p.name for p in (tmp_path / "png").rglob("*.png"))
    assert pngs == ["art_daily_jumpsup.png", "ec2_request_latency_system_failure.png"]
    assert (tmp_path / "png" / "ec2_request_latency_system_failure.png").read_bytes()[:4] == b"\x89PNG"


def test_default_detector_finds_the_labelled_anomalies_of_the_slice() -> None:
    windows = json.loads((SLICE / "windows.json").read_text())
    for key, spans in windows.items():
        series = read_series(SLICE / "data" / key)
        score = run_series("default", series).anomaly_score
        stamps = pd.to_datetime(pd.Series(series.labels)).to_numpy()
        start, end = (np.datetime64(pd.Timestamp(s)) for s in spans[0])
        inside = (stamps >= start) & (stamps <= end)
        assert (score[inside] >= 1).any(), key
        assert (score[~inside] >= 1).sum() < 15, key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--detector", "nope"], "unknown detector"),
        (["--detector", "default", "--input", "/nonexistent/x.csv"], "no such file"),
    ],
)
def test_backtest_errors_are_one_clear_sentence(tmp_path: Path, args: list[str], message: str) -> None:
    argv = ["backtest", *args, "--output", str(tmp_path)]
    if "--input" not in args:
        argv += ["--input", str(SLICE / "data")]
    result = CliRunner().invoke(create_app(), argv)
    assert result.exit_code == 2
    assert message in result.output
