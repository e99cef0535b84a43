"""sources/predictions/rows.py and cursor.py: a log line becomes a frozen Row; cursors keep their JSON shape."""

from __future__ import annotations

import dataclasses

import pytest

from aiopsd.sources.predictions.cursor import TailState
from aiopsd.sources.predictions.rows import BadRow, Row, parse_line
from aiopsd.sources.predictions.windows import WindowSpec, add_row


def test_a_jsonl_line_is_a_frozen_row() -> None:
    row = parse_line('{"timestamp": 1700000000000, "model": "m", "prediction": 1, "features": {"x": 2.0}}', None)
    assert row == Row(
        timestamp=1_700_000_000.0,
        model="m",
        version=None,
        prediction=1,
        label=None,
        prediction_id=None,
        features={"x": 2.0},
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.label = 1  # type: ignore[misc]


def test_a_csv_line_takes_its_features_from_the_other_columns() -> None:
    row = parse_line("2023-11-14T22:13:20,m,0,7,5.5", ["timestamp", "model", "prediction", "prediction_id", "x"])
    assert row.timestamp == 1_700_000_000.0 and row.prediction == 0.0 and row.prediction_id == "7"
    assert row.features == {"x": 5.5}


def test_a_late_label_has_no_prediction() -> None:
    row = parse_line('{"prediction_id": 7, "label": 1}', None)
    assert row.is_late_label and row.prediction_id == "7" and row.label == 1


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("[1]", "not a JSON object"),
        ('{"timestamp": 1, "prediction": 1, "features": 3}', "'features' is not an object"),
        ('{"timestamp": 1}', "no prediction"),
        ('{"prediction": 1}', "missing or unparsable timestamp"),
    ],
)
def test_bad_rows_say_why(line: str, why: str) -> None:
    with pytest.raises(BadRow, match=why):
        parse_line(line, None)


def test_a_cursor_written_before_rows_were_typed_reads_back_the_same() -> None:
    row = {
        "timestamp": 1.0,
        "model": "m",
        "version": "3",
        "prediction": 1,
        "label": None,
        "prediction_id": "p1",
        "features": {"x": 1.0},
    }
    stored = {
        "files": {
            "1:2": {
                "path": "/l/m.jsonl",
                "dev": 1,
                "ino": 2,
                "fp": "ab",
                "fp_len": 10,
                "offset": 5,
                "line": 1,
                "header": None,
                "seq": 0,
            }
        },
        "pending": [row],
        "labelled": [],
        "awaiting": [["p1", row]],
        "next_seq": 1,
    }
    state = TailState.from_json(stored)
    assert state.pending == [Row.from_json(row)] and list(state.awaiting) == ["p1"]
    assert state.to_json() == stored


def test_a_window_closes_on_rows_or_on_seconds() -> None:
    buf: list[Row] = []
    rows = [Row(float(t), "m", None, 1, None, None, {"x": float(t)}) for t in (0, 1, 10)]
    spec = WindowSpec(rows=3, seconds=5)
    assert add_row(spec, buf, rows[0], "predictions") == []
    assert add_row(spec, buf, rows[1], "predictions") == []
    [closed] = add_row(spec, buf, rows[2], "predictions")
    assert (closed.start, closed.end, closed.rows) == (0.0, 1.0, 2) and buf == [rows[2]]
    assert list(closed.frame.columns) == ["x", "timestamp", "model", "version", "prediction", "label", "prediction_id"]
