"""Prediction-log timestamps: UTC everywhere, epoch seconds/ms, unparseable times are bad rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiopsd.sources.predictions.cursor import MemoryCursorStore
from aiopsd.sources.predictions.tail import PredictionLogTailer
from aiopsd.sources.predictions.windows import WindowSpec

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's local zone is UTC+1/+2: nothing may read a naive time as local."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    assert time.timezone != 0
    yield
    monkeypatch.undo()
    time.tzset()


def _rec(ts: Any, i: int) -> str:
    return (
        json.dumps(
            {"timestamp": ts, "model": "m", "prediction": 1, "prediction_id": f"p{i}", "features": {"x": float(i)}}
        )
        + "\n"
    )


def _poll(tmp_path: Path, stamps: list[Any], suffix: str = "jsonl") -> tuple[list[float], int]:
    log = tmp_path / f"p.{suffix}"
    if suffix == "csv":
        log.write_text("timestamp,model,prediction,x\n" + "".join(f"{s},m,1,{i}\n" for i, s in enumerate(stamps)))
    else:
        log.write_text("".join(_rec(s, i) for i, s in enumerate(stamps)))
    t = PredictionLogTailer(name="m", pattern=str(log), store=MemoryCursorStore(), window=WindowSpec(rows=1))
    windows, stats = t.poll()
    return [w.start for w in windows], stats.bad_rows


@pytest.mark.usefixtures("berlin")
def test_naive_iso_times_are_utc_on_a_non_utc_host(tmp_path: Path) -> None:
    got, bad = _poll(
        tmp_path, ["2023-11-14T22:13:20", "2023-11-14 22:13:21", "2023-11-14T22:13:22Z", "2023-11-14T23:13:23+01:00"]
    )
    assert bad == 0
    assert got == [T0, T0 + 1, T0 + 2, T0 + 3]


@pytest.mark.usefixtures("berlin")
def test_naive_times_in_csv_are_utc(tmp_path: Path) -> None:
    got, bad = _poll(tmp_path, ["2023-11-14T22:13:20", str(T0 + 1)], suffix="csv")
    assert (got, bad) == ([T0, T0 + 1], 0)


def test_epoch_seconds_milliseconds_and_microseconds_parse(tmp_path: Path) -> None:
    got, bad = _poll(
        tmp_path, [T0, T0 + 0.5, (T0 + 1) * 1000, str((T0 + 2) * 1000), (T0 + 3) * 1_000_000, (T0 + 4) * 1_000_000_000]
    )
    assert bad == 0
    assert got == [T0, T0 + 0.5, T0 + 1, T0 + 2, T0 + 3, T0 + 4]


def test_unparseable_and_out_of_range_times_are_bad_rows(tmp_path: Path) -> None:
    got, bad = _poll(tmp_path, ["yesterday", "nan", "inf", -5, "99999-01-01", 1e30, True, T0])
    assert got == [T0]
    assert bad == 7
