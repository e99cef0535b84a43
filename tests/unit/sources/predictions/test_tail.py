"""Prediction-log tailing on real files: rotation, truncation, partial lines, restarts, late labels."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from aiopsd.sources.predictions.cursor import MemoryCursorStore
from aiopsd.sources.predictions.tail import PredictionLogTailer
from aiopsd.sources.predictions.windows import PredictionWindow, WindowSpec


def row(i: int, **extra: Any) -> str:
    rec = {
        "timestamp": 1_700_000_000 + i,
        "model": "churn",
        "version": "3",
        "prediction_id": f"p{i}",
        "features": {"x": float(i), "plan": "a" if i % 2 else "b"},
        "prediction": i % 2,
    }
    rec.update(extra)
    return json.dumps(rec) + "\n"


def append(path: Path, text: str) -> None:
    with path.open("a") as fh:
        fh.write(text)


def ids(windows: list[PredictionWindow]) -> list[str]:
    return [pid for w in windows for pid in w.frame["prediction_id"]]


def tailer(
    tmp_path: Path, store: MemoryCursorStore, rows: int = 4, pattern: str = "*.jsonl", **kw: Any
) -> PredictionLogTailer:
    return PredictionLogTailer(
        name="churn", pattern=str(tmp_path / pattern), store=store, window=WindowSpec(rows=rows), **kw
    )


def test_windows_by_rows_and_half_written_line(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    full = row(4)
    log.write_text("".join(row(i) for i in range(4)) + full[:20])
    t = tailer(tmp_path, MemoryCursorStore(), rows=5)
    windows, stats = t.poll()
    assert windows == [] and stats.rows == 4 and stats.bad_rows == 0
    append(log, full[20:])
    windows, _ = t.poll()
    assert ids(windows) == [f"p{i}" for i in range(5)]
    frame = windows[0].frame
    assert list(frame["x"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert windows[0].models == ("churn",) and windows[0].start == 1_700_000_000


def test_restart_neither_skips_nor_rereads(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    store = MemoryCursorStore()
    log.write_text("".join(row(i) for i in range(6)))
    first = tailer(tmp_path, store)
    got, _ = first.poll()
    first.commit()
    append(log, "".join(row(i) for i in range(6, 12)))
    second = tailer(tmp_path, store)  # a new process, same cursor store
    more, _ = second.poll()
    assert ids(got) + ids(more) == [f"p{i}" for i in range(12)]


def test_uncommitted_poll_is_read_again_after_restart(tmp_path: Path) -> None:
    store = MemoryCursorStore()
    (tmp_path / "p.jsonl").write_text("".join(row(i) for i in range(4)))
    got, _ = tailer(tmp_path, store).poll()  # crashed before commit
    again, _ = tailer(tmp_path, store).poll()
    assert ids(got) == ids(again) == ["p0", "p1", "p2", "p3"]


def test_rotation_finishes_the_old_file_first(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    store = MemoryCursorStore()
    log.write_text("".join(row(i) for i in range(3)))
    t = tailer(tmp_path, store)
    assert t.poll()[0] == []
    t.commit()
    append(log, "".join(row(i) for i in range(3, 5)))  # written just before rotation
    os.rename(log, tmp_path / "p.jsonl.1")  # no longer matches the glob
    log.write_text("".join(row(i) for i in range(5, 8)))
    t2 = tailer(tmp_path, store)  # also across a restart
    windows, _ = t2.poll()
    assert ids(windows) == [f"p{i}" for i in range(8)]


def test_truncation_starts_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "p.jsonl"
    log.write_text("".join(row(i) for i in range(4)))
    t = tailer(tmp_path, MemoryCursorStore())
    assert ids(t.poll()[0]) == ["p0", "p1", "p2", "p3"]
    t.commit()
    with log.open("r+") as fh:  # copytruncate-style: same inode, emptied, refilled
        fh.truncate(0)
    log.write_text("".join(row(i) for i in range(100, 104)))
    with caplog.at_level(logging.WARNING):
        windows, stats = t.poll()
    assert ids(windows) == ["p100", "p101", "p102", "p103"]
    assert stats.truncations == 1 and "truncated" in caplog.text


def test_bad_rows_are_counted_logged_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "p.jsonl"
    no_ts = json.dumps({"model": "churn", "prediction": 1})
    log.write_text(row(0) + "{not json\n" + "[1, 2]\n" + no_ts + "\n" + row(1) + row(2) + row(3))
    with caplog.at_level(logging.WARNING):
        windows, stats = tailer(tmp_path, MemoryCursorStore()).poll()
    assert stats.bad_rows == 3
    assert ids(windows) == ["p0", "p1", "p2", "p3"]
    assert f"{log}:2: not JSON" in caplog.text and f"{log}:4: missing or unparsable timestamp" in caplog.text


def test_csv_with_schema_change_across_rotation(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text(
        "timestamp,model,version,prediction,x\n2024-01-01T00:00:00Z,churn,1,0.5,1.5\n"
        "2024-01-01T00:00:01Z,churn,1,0.7,2.5\n2024-01-01T00:00:02Z,churn,1,0.1\n"
    )
    t = tailer(tmp_path, MemoryCursorStore(), rows=3, pattern="*.csv")
    windows, stats = t.poll()
    assert windows == [] and stats.bad_rows == 1  # the short CSV row
    os.utime(a, (1, 1))
    b = tmp_path / "b.csv"
    b.write_text("timestamp,model,version,prediction,x,region\n1704067203,churn,2,0.9,3.5,eu\n")
    windows, _ = t.poll()
    frame = windows[0].frame
    assert list(frame["x"]) == [1.5, 2.5, 3.5]
    assert frame["region"].isna().sum() == 2 and frame["region"].iloc[2] == "eu"
    assert windows[0].versions == ("1", "2")


def test_late_labels_are_joined_by_prediction_id(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    store = MemoryCursorStore()
    log.write_text("".join(row(i) for i in range(4)))
    t = tailer(tmp_path, store, rows=2)
    windows, _ = t.poll()
    assert [w.kind for w in windows] == ["predictions", "predictions"]
    t.commit()
    append(
        log,
        json.dumps({"prediction_id": "p1", "label": 0})
        + "\n"
        + json.dumps({"prediction_id": "nope", "label": 1})
        + "\n",
    )
    t = tailer(tmp_path, store, rows=2)  # the awaiting predictions survive a restart
    assert t.poll()[0] == []
    t.commit()
    append(log, json.dumps({"prediction_id": "p2", "label": 0}) + "\n")
    windows, stats = t.poll()
    assert stats.labels_joined == 1
    (w,) = windows
    assert w.kind == "labels"
    assert w.frame[["prediction_id", "prediction", "label"]].to_dict("records") == [
        {"prediction_id": "p1", "prediction": 1, "label": 0},
        {"prediction_id": "p2", "prediction": 0, "label": 0},
    ]
    assert list(w.frame["x"]) == [1.0, 2.0]  # features travel with the label: enough to retrain on


def test_time_windows_and_model_filter(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_text("".join(row(i * 30) for i in range(5)) + row(999, model="other"))
    t = PredictionLogTailer(
        name="c", pattern=str(log), store=MemoryCursorStore(), window=WindowSpec(rows=None, seconds=60), model="churn"
    )
    windows, stats = t.poll()
    assert [list(w.frame["prediction_id"]) for w in windows] == [["p0", "p30"], ["p60", "p90"]]
    assert stats.skipped_other_model == 1
    assert isinstance(windows[0].frame, pd.DataFrame)


def test_a_poll_not_committed_is_judged_again_by_the_next_poll(tmp_path: Path) -> None:
    """The caller could not store what a poll produced: the same tailer yields the same windows again."""
    log = tmp_path / "p.jsonl"
    store = MemoryCursorStore()
    log.write_text("".join(row(i) for i in range(6)))
    t = tailer(tmp_path, store)
    first, _ = t.poll()
    assert ids(first) == ["p0", "p1", "p2", "p3"]
    append(log, "".join(row(i) for i in range(6, 8)))
    again, _ = t.poll()  # no commit in between (a store blip)
    assert ids(again) == [f"p{i}" for i in range(8)]
    t.commit()
    append(log, "".join(row(i) for i in range(8, 12)))
    after, _ = t.poll()
    assert ids(after) == ["p8", "p9", "p10", "p11"]
