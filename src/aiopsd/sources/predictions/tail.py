"""Tail model prediction logs (JSONL or CSV) into windows, with durable offsets.

One :class:`PredictionLogTailer` follows one path or glob. ``poll()`` reads every
complete new line, parses rows, joins late labels by prediction id and returns
the windows that became complete; ``commit()`` stores the position (per file:
device + inode, a fingerprint of the first bytes, byte offset and line number),
the rows of the window still being filled and the predictions still waiting for
their label, through a :class:`CursorStore`. A tailer built later from the same
store continues exactly after the last committed row: nothing skipped, nothing
read twice. Rows read by a ``poll()`` that was never committed are read again
by the next ``poll()`` and after a restart (at-least-once until commit): each
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

Row fields are described in :mod:`aiopsd.sources.predictions.rows`; a late label (a row with
``prediction_id`` and ``label`` but no ``prediction``) is joined to the prediction with that id.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiopsd.sources.predictions.cursor import CursorStore, FileCursor, TailState
from aiopsd.sources.predictions.rows import BadRow, Row, parse_line
from aiopsd.sources.predictions.windows import PredictionWindow, WindowKind, WindowSpec, add_row

logger = logging.getLogger(__name__)

FINGERPRINT_BYTES = 256
MAX_READ_BYTES = 16 * 1024 * 1024
"""Upper bound of bytes read from one file per poll (the rest waits for the next poll)."""


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


def _fingerprint(path: str, length: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(length)).hexdigest()


class PredictionLogTailer:
    """Follow ``pattern`` (a path or a glob) and cut its rows into windows.

    ``name`` keys the cursor in ``store``. ``fmt`` is ``"jsonl"`` or ``"csv"``;
    by default it follows each file's suffix (``.csv`` is CSV, anything else JSONL).
    ``model``: when set, rows of other models are skipped (and counted).
    ``max_awaiting``: how many unlabelled predictions are remembered for late
    labels (the oldest are forgotten first).
    """

    def __init__(
        self,
        *,
        name: str,
        pattern: str,
        store: CursorStore,
        window: WindowSpec | None = None,
        fmt: Literal["jsonl", "csv"] | None = None,
        model: str | None = None,
        max_awaiting: int = 5000,
    ) -> None:
        self.name = name
        self.pattern = pattern
        self.store = store
        self.window = window or WindowSpec()
        self.fmt = fmt
        self.model = model
        self.max_awaiting = max_awaiting
        # The last committed position; every poll() starts from it (see the module docstring).
        self._committed: dict[str, Any] = self.store.get_cursor(self.name) or {}
        self._state = TailState.from_json(self._committed)

    def commit(self) -> None:
        """Persist everything consumed so far (call after the windows of the last poll are stored)."""
        snapshot = self._state.to_json()
        self.store.put_cursor(self.name, snapshot)
        self._committed = snapshot

    # -- files ------------------------------------------------------------------------------------
    def _locate(self, cur: FileCursor) -> str | None:
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

    def _files_in_order(self, stats: PollStats) -> list[FileCursor]:
        st = self._state
        by_identity: dict[str, FileCursor] = {}
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
            cur = FileCursor(
                path=path, dev=pst.st_dev, ino=pst.st_ino, fp=_fingerprint(path, fp_len), fp_len=fp_len, seq=st.next_seq
            )
            st.next_seq += 1
            key = f"{pst.st_dev}:{pst.st_ino}"
            st.files[key] = by_identity[key] = cur
        stats.files = len(by_identity)
        return sorted(by_identity.values(), key=lambda c: c.seq)

    def _read_file(self, cur: FileCursor, stats: PollStats) -> list[Row]:
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
        rows: list[Row] = []
        for raw in data[: end + 1].split(b"\n")[:-1]:
            cur.line += 1
            text = raw.decode("utf-8", errors="replace").rstrip("\r")
            if not text.strip():
                continue
            if is_csv and cur.header is None:
                cur.header = next(csv.reader([text]))
                continue
            try:
                rows.append(parse_line(text, cur.header if is_csv else None))
            except BadRow as exc:
                stats.bad_rows += 1
                logger.warning("skipping bad row %s:%d: %s", cur.path, cur.line, exc)
        cur.offset += end + 1
        return rows

    # -- rows -> windows --------------------------------------------------------------------------
    def poll(self) -> tuple[list[PredictionWindow], PollStats]:
        """Read what is new since the last commit and return the windows it completes (oldest first).

        Does not commit: a poll that is not followed by ``commit()`` is read again by the next one.
        """
        self._state = TailState.from_json(self._committed)
        stats = PollStats()
        windows: list[PredictionWindow] = []
        for cur in self._files_in_order(stats):
            for row in self._read_file(cur, stats):
                if self.model is not None and row.model is not None and row.model != self.model:
                    stats.skipped_other_model += 1
                    continue
                windows.extend(self._accept(row, stats))
        return windows, stats

    def _accept(self, row: Row, stats: PollStats) -> list[PredictionWindow]:
        st = self._state
        out: list[PredictionWindow] = []
        if row.is_late_label:
            assert row.prediction_id is not None
            pred = st.awaiting.pop(row.prediction_id, None)
            if pred is None:
                stats.labels_unmatched += 1
                logger.debug("label for unknown prediction_id %s", row.prediction_id)
                return out
            stats.labels_joined += 1
            out.extend(self._add(st.labelled, pred.with_label(row.label), "labels"))
            return out
        stats.rows += 1
        if row.label is not None:
            out.extend(self._add(st.labelled, row, "labels"))
        elif row.prediction_id is not None:
            st.awaiting[row.prediction_id] = row
            while len(st.awaiting) > self.max_awaiting:
                st.awaiting.popitem(last=False)
        out.extend(self._add(st.pending, row, "predictions"))
        return out

    def _add(self, buf: list[Row], row: Row, kind: WindowKind) -> list[PredictionWindow]:
        return add_row(self.window, buf, row, kind)
