"""Tail model prediction logs (JSONL or CSV) into windows, with durable offsets.

One :class:`PredictionLogTailer` follows one path or glob. ``poll()`` reads every
complete new line, parses rows, joins late labels by prediction id and returns
the windows that became complete; ``commit()`` stores the position (per file:
device + inode, a fingerprint of the first bytes, byte offset and line number),
the rows of the window still being filled and the predictions still waiting for
their label, through a :class:`CursorStore`. A tailer built later from the same
store continues exactly after the last committed row: nothing skipped, nothing
read twice. Rows read by a ``poll()`` that was never committed are read again
again by the next ``poll()`` and after a restart (at-least-once until commit): each
``poll()`` starts from the last committed position, so a caller that failed to store
what a poll produced simply polls again and gets the same windows.

File life cycle:

* rotation (file renamed, a new one created at the path): the renamed file is
  found again by device + inode in the same directory and finished first;
* truncation (size below the offset, or the head fingerprint changed): the file
  is read again from the start, with a warning;
* a half-written last line is left alone until its newline arrives;
* a bad row (not JSON, not an object, wrong CSV field count, no or unparseable timestamp, no
  prediction) is counted and logged with file and line number, then skipped.

Row fields (JSONL keys or CSV header names): ``timestamp`` (epoch seconds,
milliseconds, microseconds or nanoseconds, told apart by magnitude, or ISO 8601;
a time without a zone is UTC, never the host's local time), ``model``,
``version``, ``prediction``, optional ``label``, optional ``prediction_id``;
features are the ``features`` object in JSONL, or every other field. A row with
``prediction_id`` and ``label`` but no ``prediction`` is a late label: it is joined to the prediction with that id.
"""

from __future__ import annotations

import copy
import csv
import glob
import hashlib
import json
import logging
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd

logger = logging.getLogger(__name__)

FINGERPRINT_BYTES = 256
MAX_READ_BYTES = 16 * 1024 * 1024
"""Upper bound of bytes read from one file per poll (the rest waits for the next poll)."""

RESERVED = ("timestamp", "model", "version", "prediction", "label", "prediction_id")
_TEXT_FIELDS = frozenset({"timestamp", "model", "version", "prediction_id"})


class CursorStore(Protocol):
    """Where a tailer keeps its position; values are JSON-able dicts.

    The daemon's ``StateStore`` implements exactly these two methods.
    """

    def get_cursor(self, name: str) -> dict[str, Any] | None: ...

    def put_cursor(self, name: str, value: dict[str, Any]) -> None: ...


class MemoryCursorStore:
    """A :class:`CursorStore` in a dict (tests, one-shot CLI runs). Values are copied through JSON."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    def get_cursor(self, name: str) -> dict[str, Any] | None:
        raw = self._data.get(name)
        return None if raw is None else dict(json.loads(raw))

    def put_cursor(self, name: str, value: dict[str, Any]) -> None:
        self._data[name] = json.dumps(value)


@dataclass(frozen=True)
class WindowSpec:
    """A window closes after ``rows`` rows or when a row is ``seconds`` past its first row (either first)."""

    rows: int | None = 500
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.rows is None and self.seconds is None:
            raise ValueError("a window needs rows or seconds")
        if (self.rows is not None and self.rows < 1) or (self.seconds is not None and self.seconds <= 0):
            raise ValueError("window rows must be >= 1 and seconds > 0")


@dataclass(frozen=True)
class PredictionWindow:
    """A complete window of feature, ``prediction``, ``label``, ``timestamp``, ``model``, ``version``
    and ``prediction_id`` columns. ``kind="predictions"``: every prediction (``label`` only where it was
    inline); ``kind="labels"``: predictions whose label is known (inline or joined later) - the data for
    performance drift and for retraining."""

    kind: Literal["predictions", "labels"]
    start: float
    end: float
    frame: pd.DataFrame
    models: tuple[str, ...]
    versions: tuple[str, ...]

    @property
    def rows(self) -> int:
        return len(self.frame)


@dataclass
class PollStats:
    """What one poll did; the daemon exports these as metrics."""

    rows: int = 0
    labels_joined: int = 0
    labels_unmatched: int = 0
    bad_rows: int = 0
    skipped_other_model: int = 0
    files: int = 0
    truncations: int = 0


@dataclass
class _FileCursor:
    path: str
    dev: int
    ino: int
    fp: str
    fp_len: int
    offset: int = 0
    line: int = 0
    header: list[str] | None = None
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "dev": self.dev, "ino": self.ino, "fp": self.fp, "fp_len": self.fp_len,
                "offset": self.offset, "line": self.line, "header": self.header, "seq": self.seq}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _FileCursor:
        return cls(path=str(d["path"]), dev=int(d["dev"]), ino=int(d["ino"]), fp=str(d["fp"]),
                   fp_len=int(d["fp_len"]), offset=int(d["offset"]), line=int(d["line"]),
                   header=d.get("header"), seq=int(d.get("seq", 0)))


@dataclass
class _State:
    files: dict[str, _FileCursor] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    labelled: list[dict[str, Any]] = field(default_factory=list)
    awaiting: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    next_seq: int = 0


def _fingerprint(path: str, length: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(length)).hexdigest()


# Epoch numbers above these magnitudes are read as milliseconds, microseconds, nanoseconds: 1e11 s
# would be the year 5138, while 1e11 ms is 1973. Times after the year 9999 or before 1970 are bad rows.
_EPOCH_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))
_MAX_EPOCH = 253_402_300_799.0  # 9999-12-31T23:59:59Z


def _parse_ts(value: Any) -> float | None:
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


class BadRow(ValueError):
    """One log line that cannot be a row; the message says why."""


class PredictionLogTailer:
    """Follow ``pattern`` (a path or a glob) and cut its rows into windows.

    ``name`` keys the cursor in ``store``. ``fmt`` is ``"jsonl"`` or ``"csv"``;
    by default it follows each file's suffix (``.csv`` is CSV, anything else JSONL).
    ``model``: when set, rows of other models are skipped (and counted).
    ``max_awaiting``: how many unlabelled predictions are remembered for late
    labels (the oldest are forgotten first).
    """

    def __init__(self, *, name: str, pattern: str, store: CursorStore, window: WindowSpec | None = None,
                 fmt: Literal["jsonl", "csv"] | None = None, model: str | None = None,
                 max_awaiting: int = 5000) -> None:
        self.name = name
        self.pattern = pattern
        self.store = store
        self.window = window or WindowSpec()
        self.fmt = fmt
        self.model = model
        self.max_awaiting = max_awaiting
        # The last committed position; every poll() starts from it (see the module docstring).
        self._committed = self._load()
        self._state = self._from_json(self._committed)

    # -- cursor -----------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        return self.store.get_cursor(self.name) or {}

    @staticmethod
    def _from_json(raw: dict[str, Any]) -> _State:
        return _State(files={k: _FileCursor.from_json(v) for k, v in raw.get("files", {}).items()},
                      pending=copy.deepcopy(raw.get("pending", [])),
                      labelled=copy.deepcopy(raw.get("labelled", [])),
                      awaiting=OrderedDict(copy.deepcopy(raw.get("awaiting", []))),
                      next_seq=int(raw.get("next_seq", 0)))

    def commit(self) -> None:
        """Persist everything consumed so far (call after the windows of the last poll are stored)."""
        st = self._state
        snapshot = {"files": {k: v.to_json() for k, v in st.files.items()},
                    "pending": st.pending, "labelled": st.labelled,
                    "awaiting": [[k, v] for k, v in st.awaiting.items()], "next_seq": st.next_seq}
        self.store.put_cursor(self.name, snapshot)
        self._committed = snapshot

    # -- files ------------------------------------------------------------------------------------
    def _locate(self, cur: _FileCursor) -> str | None:
        """Where the file of ``cur`` is now: its old path, or a renamed sibling (same dev + inode)."""
        try:
            st = os.stat(cur.path)
            if (st.st_dev, st.st_ino) == (cur.dev, cur.ino):
                return cur.path
        except OSError:
            pass
        parent = os.path.dirname(cur.path) or "."
        try:
            with os.scandir(parent) as it:
                for entry in it:
                    try:
                        est = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if (est.st_dev, est.st_ino) == (cur.dev, cur.ino) and entry.is_file():
                        return entry.path
        except OSError:
            return None
        return None

    def _files_in_order(self, stats: PollStats) -> list[_FileCursor]:
        st = self._state
        by_identity: dict[str, _FileCursor] = {}
        for key, cur in list(st.files.items()):
            where = self._locate(cur)
            if where is None:
                logger.info("prediction log %s is gone; forgetting its cursor", cur.path)
                del st.files[key]
                continue
            cur.path = where
            by_identity[key] = cur
        new: list[tuple[float, str, os.stat_result]] = []
        for path in glob.glob(self.pattern):
            try:
                pst = os.stat(path)
            except OSError:
                continue
            if not os.path.isfile(path):
                continue
            key = f"{pst.st_dev}:{pst.st_ino}"
            if key not in by_identity:
                new.append((pst.st_mtime, path, pst))
        for _, path, pst in sorted(new):
            fp_len = min(pst.st_size, FINGERPRINT_BYTES)
            cur = _FileCursor(path=path, dev=pst.st_dev, ino=pst.st_ino, fp=_fingerprint(path, fp_len),
                              fp_len=fp_len, seq=st.next_seq)
            st.next_seq += 1
            key = f"{pst.st_dev}:{pst.st_ino}"
            st.files[key] = by_identity[key] = cur
        stats.files = len(by_identity)
        return sorted(by_identity.values(), key=lambda c: c.seq)

    def _read_file(self, cur: _FileCursor, stats: PollStats) -> list[dict[str, Any]]:
        try:
            size = os.path.getsize(cur.path)
            head = _fingerprint(cur.path, cur.fp_len)
        except OSError as exc:
            logger.warning("cannot read prediction log %s: %s", cur.path, exc)
            return []
        if size < cur.offset or head != cur.fp:
            logger.warning("prediction log %s was truncated or replaced; reading it from the start", cur.path)
            stats.truncations += 1
            cur.offset, cur.line, cur.header = 0, 0, None
            cur.fp_len = min(size, FINGERPRINT_BYTES)
            cur.fp = _fingerprint(cur.path, cur.fp_len)
        if cur.fp_len < FINGERPRINT_BYTES and size > cur.fp_len:
            # The head was shorter than the fingerprint when first seen: widen it now, checking the old part.
            cur.fp_len = min(size, FINGERPRINT_BYTES)
            cur.fp = _fingerprint(cur.path, cur.fp_len)
        if size == cur.offset:
            return []
        with open(cur.path, "rb") as fh:
            fh.seek(cur.offset)
            data = fh.read(min(size - cur.offset, MAX_READ_BYTES))
        end = data.rfind(b"\n")
        if end < 0:
            return []  # half-written line: wait for its newline
        is_csv = self.fmt == "csv" or (self.fmt is None and Path(cur.path).suffix.lower() == ".csv")
        rows: list[dict[str, Any]] = []
        for raw in data[: end + 1].split(b"\n")[:-1]:
            cur.line += 1
            text = raw.decode("utf-8", errors="replace").rstrip("\r")
            if not text.strip():
                continue
            try:
                if is_csv:
                    if cur.header is None:
                        cur.header = next(csv.reader([text]))
                        continue
                    rec = self._csv_record(cur.header, text)
                else:
                    rec = self._json_record(text)
                rows.append(self._normalise(rec))
            except BadRow as exc:
                stats.bad_rows += 1
                logger.warning("skipping bad row %s:%d: %s", cur.path, cur.line, exc)
        cur.offset += end + 1
        return rows

    @staticmethod
    def _csv_record(header: list[str], text: str) -> dict[str, Any]:
        fields = next(csv.reader([text]))
        if len(fields) != len(header):
            raise BadRow(f"{len(fields)} fields, header has {len(header)}")
        return {h: (v or None) if h in _TEXT_FIELDS else _csv_value(v)
                for h, v in zip(header, fields, strict=True)}

    @staticmethod
    def _json_record(text: str) -> dict[str, Any]:
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRow(f"not JSON ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise BadRow("not a JSON object")
        return rec

    @staticmethod
    def _normalise(rec: dict[str, Any]) -> dict[str, Any]:
        features = rec.get("features")
        if isinstance(features, dict):
            feats = dict(features)
        elif features is None:
            feats = {k: v for k, v in rec.items() if k not in RESERVED}
        else:
            raise BadRow("'features' is not an object")
        pid = rec.get("prediction_id")
        out = {"timestamp": _parse_ts(rec.get("timestamp")), "model": rec.get("model"),
               "version": rec.get("version"), "prediction": rec.get("prediction"),
               "label": rec.get("label"), "prediction_id": None if pid is None else str(pid),
               "features": feats}
        if out["prediction"] is None:
            if out["prediction_id"] is not None and out["label"] is not None:
                return out  # a late label
            raise BadRow("no prediction (and not a label for a prediction_id)")
        if out["timestamp"] is None:
            raise BadRow("missing or unparsable timestamp")
        return out

    # -- rows -> windows --------------------------------------------------------------------------
    def poll(self) -> tuple[list[PredictionWindow], PollStats]:
        """Read what is new since the last commit and return the windows it completes (oldest first).

        Does not commit: a poll that is not followed by ``commit()`` is read again by the next one.
        """
        self._state = self._from_json(self._committed)
        stats = PollStats()
        windows: list[PredictionWindow] = []
        for cur in self._files_in_order(stats):
            for row in self._read_file(cur, stats):
                if self.model is not None and row["model"] is not None and row["model"] != self.model:
                    stats.skipped_other_model += 1
                    continue
                windows.extend(self._accept(row, stats))
        return windows, stats

    def _accept(self, row: dict[str, Any], stats: PollStats) -> list[PredictionWindow]:
        st = self._state
        out: list[PredictionWindow] = []
        if row["prediction"] is None:  # late label
            pred = st.awaiting.pop(row["prediction_id"], None)
            if pred is None:
                stats.labels_unmatched += 1
                logger.debug("label for unknown prediction_id %s", row["prediction_id"])
                return out
            stats.labels_joined += 1
            out.extend(self._add(st.labelled, {**pred, "label": row["label"]}, "labels"))
            return out
        stats.rows += 1
        if row["label"] is not None:
            out.extend(self._add(st.labelled, self._label_rec(row), "labels"))
        elif row["prediction_id"] is not None:
            st.awaiting[row["prediction_id"]] = self._label_rec(row)
            while len(st.awaiting) > self.max_awaiting:
                st.awaiting.popitem(last=False)
        out.extend(self._add(st.pending, row, "predictions"))
        return out

    @staticmethod
    def _label_rec(row: dict[str, Any]) -> dict[str, Any]:
        return {"timestamp": row["timestamp"], "model": row["model"], "version": row["version"],
                "prediction": row["prediction"], "label": row["label"], "prediction_id": row["prediction_id"],
                "features": row["features"]}

    def _add(self, buf: list[dict[str, Any]], row: dict[str, Any],
             kind: Literal["predictions", "labels"]) -> list[PredictionWindow]:
        out: list[PredictionWindow] = []
        spec = self.window
        if buf and spec.seconds is not None and row["timestamp"] is not None:
            first = buf[0]["timestamp"]
            if first is not None and row["timestamp"] - first >= spec.seconds:
                out.append(_to_window(kind, buf))
                buf.clear()
        buf.append(row)
        if spec.rows is not None and len(buf) >= spec.rows:
            out.append(_to_window(kind, buf))
            buf.clear()
        return out


def _to_window(kind: Literal["predictions", "labels"], rows: list[dict[str, Any]]) -> PredictionWindow:
    records = []
    for r in rows:
        rec = dict(r["features"])
        rec.update({"timestamp": r["timestamp"], "model": r["model"], "version": r["version"],
                    "prediction": r["prediction"], "label": r["label"], "prediction_id": r["prediction_id"]})
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    ts = [r["timestamp"] for r in rows if r["timestamp"] is not None]
    models = tuple(sorted({str(r["model"]) for r in rows if r["model"] is not None}))
    versions = tuple(sorted({str(r["version"]) for r in rows if r["version"] is not None}))
    return PredictionWindow(kind=kind, start=min(ts) if ts else math.nan, end=max(ts) if ts else math.nan,
                            frame=frame, models=models, versions=versions)
