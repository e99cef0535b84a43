"""A tailer's durable position: per file (device + inode, a fingerprint of the first bytes, byte
offset and line number), the rows of the windows still being filled and the predictions still
waiting for their label, kept as one JSON-able value in a :class:`CursorStore`."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiopsd.sources.predictions.rows import Row


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


@dataclass
class FileCursor:
    """How far one file was read; ``seq`` orders files by when they were first seen."""

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
        return {
            "path": self.path,
            "dev": self.dev,
            "ino": self.ino,
            "fp": self.fp,
            "fp_len": self.fp_len,
            "offset": self.offset,
            "line": self.line,
            "header": self.header,
            "seq": self.seq,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FileCursor:
        return cls(
            path=str(d["path"]),
            dev=int(d["dev"]),
            ino=int(d["ino"]),
            fp=str(d["fp"]),
            fp_len=int(d["fp_len"]),
            offset=int(d["offset"]),
            line=int(d["line"]),
            header=d.get("header"),
            seq=int(d.get("seq", 0)),
        )


@dataclass
class TailState:
    """Everything a tailer has consumed: file cursors, open windows, unlabelled predictions by id."""

    files: dict[str, FileCursor] = field(default_factory=dict)
    pending: list[Row] = field(default_factory=list)
    labelled: list[Row] = field(default_factory=list)
    awaiting: OrderedDict[str, Row] = field(default_factory=OrderedDict)
    next_seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "files": {k: v.to_json() for k, v in self.files.items()},
            "pending": [r.to_json() for r in self.pending],
            "labelled": [r.to_json() for r in self.labelled],
            "awaiting": [[k, v.to_json()] for k, v in self.awaiting.items()],
            "next_seq": self.next_seq,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TailState:
        return cls(
            files={k: FileCursor.from_json(v) for k, v in raw.get("files", {}).items()},
            pending=[Row.from_json(r) for r in raw.get("pending", [])],
            labelled=[Row.from_json(r) for r in raw.get("labelled", [])],
            awaiting=OrderedDict((str(k), Row.from_json(v)) for k, v in raw.get("awaiting", [])),
            next_seq=int(raw.get("next_seq", 0)),
        )
