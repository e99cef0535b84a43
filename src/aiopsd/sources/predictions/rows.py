"""One prediction-log line -> one :class:`Row` (or a :class:`BadRow` saying why not).

Row fields (JSONL keys or CSV header names): ``timestamp`` (epoch seconds,
milliseconds, microseconds or nanoseconds, told apart by magnitude, or ISO 8601;
a time without a zone is UTC, never the host's local time), ``model``,
``version``, ``prediction``, optional ``label``, optional ``prediction_id``;
features are the ``features`` object in JSONL, or every other field. A row with
``prediction_id`` and ``label`` but no ``prediction`` is a late label.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

RESERVED = ("timestamp", "model", "version", "prediction", "label", "prediction_id")
_TEXT_FIELDS = frozenset({"timestamp", "model", "version", "prediction_id"})


class BadRow(ValueError):
    """One log line that cannot be a row; the message says why."""


@dataclass(frozen=True)
class Row:
    """One parsed log row. ``prediction`` is None only for a late label (``prediction_id`` + ``label``)."""

    timestamp: float | None
    model: Any
    version: Any
    prediction: Any
    label: Any
    prediction_id: str | None
    features: Mapping[str, Any]

    @property
    def is_late_label(self) -> bool:
        return self.prediction is None

    def with_label(self, label: Any) -> Row:
        return replace(self, label=label)

    def record(self) -> dict[str, Any]:
        """The row as one flat record: its features, then the reserved fields."""
        return {
            **self.features,
            "timestamp": self.timestamp,
            "model": self.model,
            "version": self.version,
            "prediction": self.prediction,
            "label": self.label,
            "prediction_id": self.prediction_id,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "model": self.model,
            "version": self.version,
            "prediction": self.prediction,
            "label": self.label,
            "prediction_id": self.prediction_id,
            "features": dict(self.features),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Row:
        return cls(
            timestamp=d["timestamp"],
            model=d["model"],
            version=d["version"],
            prediction=d["prediction"],
            label=d["label"],
            prediction_id=d["prediction_id"],
            features=dict(d["features"]),
        )


def parse_line(text: str, header: list[str] | None) -> Row:
    """A JSONL line (``header`` None) or a CSV line under ``header``; raises :class:`BadRow`."""
    return normalise(json_record(text) if header is None else csv_record(header, text))


def csv_record(header: list[str], text: str) -> dict[str, Any]:
    fields = next(csv.reader([text]))
    if len(fields) != len(header):
        raise BadRow(f"{len(fields)} fields, header has {len(header)}")
    return {h: (v or None) if h in _TEXT_FIELDS else _csv_value(v) for h, v in zip(header, fields, strict=True)}


def json_record(text: str) -> dict[str, Any]:
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRow(f"not JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise BadRow("not a JSON object")
    return rec


def normalise(rec: Mapping[str, Any]) -> Row:
    features = rec.get("features")
    if isinstance(features, dict):
        feats = dict(features)
    elif features is None:
        feats = {k: v for k, v in rec.items() if k not in RESERVED}
    else:
        raise BadRow("'features' is not an object")
    pid = rec.get("prediction_id")
    row = Row(
        timestamp=parse_ts(rec.get("timestamp")),
        model=rec.get("model"),
        version=rec.get("version"),
        prediction=rec.get("prediction"),
        label=rec.get("label"),
        prediction_id=None if pid is None else str(pid),
        features=feats,
    )
    if row.prediction is None:
        if row.prediction_id is not None and row.label is not None:
            return row  # a late label
        raise BadRow("no prediction (and not a label for a prediction_id)")
    if row.timestamp is None:
        raise BadRow("missing or unparsable timestamp")
    return row


# Epoch numbers above these magnitudes are read as milliseconds, microseconds, nanoseconds: 1e11 s
# would be the year 5138, while 1e11 ms is 1973. Times after the year 9999 or before 1970 are bad rows.
_EPOCH_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))
_MAX_EPOCH = 253_402_300_799.0  # 9999-12-31T23:59:59Z


def parse_ts(value: Any) -> float | None:
    """Epoch seconds (s, ms, us or ns by magnitude) or ISO 8601; a time without a zone is UTC.

    None for anything else, and for times outside 1970..9999 (never a local-time reading).
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _epoch(float(value))
    text = str(value).strip()
    try:
        return _epoch(float(text))
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _epoch(x: float) -> float | None:
    if not math.isfinite(x) or x < 0:
        return None
    for above, per_second in _EPOCH_UNITS:
        if x >= above:
            x /= per_second
            break
    return x if x <= _MAX_EPOCH else None


def _csv_value(text: str) -> Any:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text
