"""The directory backend: a versioned model directory with an atomic ``current`` pointer (zero dependencies).

Layout::

    MODEL_DIR/
      versions/1/model.joblib  metrics.json  meta.json
      versions/2/...
      current -> versions/2        (relative symlink)
      history.jsonl                (one line per switch of ``current``: append-only)

``current`` is a symlink, replaced with ``os.replace`` of a freshly made temporary
symlink: rename(2) is atomic, so a reader opening ``current/model.joblib`` sees the
old version or the new one, never a mix, and any serving process can load
``MODEL_DIR/current/model.joblib`` without knowing this module (a pointer file
would force every reader to parse it). A version directory is written under a
temporary name and renamed into place, so a crash never leaves half a version.
``meta.json`` holds the version's status and its lineage (see :mod:`.lineage`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from aiopsd.model_store.base import ModelVersion, RegistryError, Status, StoreSpec, check_mark, rollback_target

MODEL_FILE = "model.joblib"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).isoformat(timespec="seconds")


class DirectoryStore:
    """:class:`~aiopsd.model_store.base.ModelStore` on a local directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def from_spec(cls, spec: StoreSpec) -> DirectoryStore:
        if spec.path is None:
            raise RegistryError("a directory model_store needs a path")
        return cls(spec.path)

    @property
    def label(self) -> str:
        return str(self.path)

    @property
    def _versions(self) -> Path:
        return self.path / "versions"

    def _numbers(self) -> list[int]:
        if not self._versions.is_dir():
            return []
        return sorted(int(p.name) for p in self._versions.iterdir() if p.name.isdigit() and p.is_dir())

    def version_dir(self, number: int) -> Path:
        return self._versions / str(number)

    def current(self) -> int | None:
        try:
            target = os.readlink(self.path / "current")
        except OSError:
            return None
        name = Path(target).name
        return int(name) if name.isdigit() else None

    def get(self, number: int) -> ModelVersion:
        path = self.version_dir(number)
        if not (path / MODEL_FILE).is_file():
            raise RegistryError(f"{self.path} has no version {number}; see `aiopsd model list`")
        meta = _read_json(path / "meta.json")
        status: Status = meta.get("status", "candidate")
        return ModelVersion(
            number=number,
            status=status,
            created_at=str(meta.get("created_at", "")),
            current=self.current() == number,
            metrics=_read_json(path / "metrics.json"),
            meta=meta,
            uri=str(path),
        )

    def list_versions(self) -> list[ModelVersion]:
        return [self.get(n) for n in self._numbers()]

    def register(
        self,
        model: Any,
        *,
        metrics: dict[str, Any],
        meta: dict[str, Any] | None = None,
        status: Status = "candidate",
        now: datetime | None = None,
    ) -> ModelVersion:
        self._versions.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=self._versions))
        try:
            joblib.dump(model, tmp / MODEL_FILE)
            _write_json_atomic(tmp / "metrics.json", metrics)
            _write_json_atomic(tmp / "meta.json", {**(meta or {}), "status": status, "created_at": _stamp(now)})
            while True:
                number = max(self._numbers(), default=0) + 1
                try:
                    os.rename(tmp, self.version_dir(number))  # fails if a concurrent writer took the number
                    break
                except OSError:
                    if self.version_dir(number).exists():
                        continue
                    raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get(number)

    def promote(self, number: int, *, reason: str = "promoted by hand", now: datetime | None = None) -> ModelVersion:
        return self._serve(number, kind="promote", reason=reason, now=now)

    def rollback(self, *, to: int | None = None, now: datetime | None = None) -> ModelVersion:
        """Repeated rollbacks walk further back (3 -> 2 -> 1), they do not toggle."""
        cur = self.current()
        if to is None:
            to = rollback_target(str(self.path), self.history(), cur)
        return self._serve(to, kind="rollback", reason=f"rollback from {cur}", now=now)

    def mark(
        self, number: int, *, status: Status | None = None, lifecycle: dict[str, Any] | None = None
    ) -> ModelVersion:
        v = self.get(number)
        check_mark(number, self.current(), v.status, status)
        meta = {**v.meta, **({"status": status} if status else {})}
        if lifecycle is not None:
            meta["lifecycle"] = lifecycle
        _write_json_atomic(self.version_dir(number) / "meta.json", meta)
        return self.get(number)

    def _serve(self, number: int, *, kind: str, reason: str, now: datetime | None) -> ModelVersion:
        v = self.get(number)
        if v.status == "rejected":
            raise RegistryError(
                f"version {number} was rejected by the retrain gate and is never served; promote another version"
            )
        if v.status != "promoted":
            _write_json_atomic(self.version_dir(number) / "meta.json", {**v.meta, "status": "promoted"})
        self._switch(number)
        self._append_history({"version": number, "kind": kind, "reason": reason, "at": _stamp(now)})
        return self.get(number)

    def _switch(self, number: int) -> None:
        """The registry write: one rename(2) of a fresh symlink over ``current``."""
        tmp = self.path / f".current.{os.getpid()}.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(os.path.join("versions", str(number)), tmp)
        os.replace(tmp, self.path / "current")

    def _append_history(self, event: dict[str, Any]) -> None:
        """The audit write (after the switch: a crash in between is repaired by ``served_stack``)."""
        with (self.path / "history.jsonl").open("a") as fh:
            fh.write(json.dumps(event) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def history(self) -> list[dict[str, Any]]:
        path = self.path / "history.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(dict(json.loads(line)))
            except ValueError:
                continue  # a line cut off by a crash
        return out

    def load(self, number: int | None = None) -> tuple[int, Any]:
        if number is None:
            number = self.current()
            if number is None:
                raise RegistryError(f"{self.path} has no current model; promote a version first")
        self.get(number)
        return number, joblib.load(self.version_dir(number) / MODEL_FILE)
