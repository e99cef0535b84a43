"""A versioned model directory with an atomic ``current`` pointer.

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

``meta.json`` ``status``: ``promoted`` (was current at some point), ``candidate``
(stored, never served) or ``rejected`` (failed the retrain gate: it can never be
promoted). ``rollback`` follows ``history.jsonl`` back to the version that was
current before the present one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import joblib

from aiopsd.errors import AiopsdError

Status = Literal["promoted", "candidate", "rejected"]
MODEL_FILE = "model.joblib"


class RegistryError(AiopsdError):
    """The model directory cannot do what was asked; the message says what to do."""


@dataclass(frozen=True)
class ModelVersion:
    number: int
    path: Path
    status: Status
    created_at: str
    current: bool
    metrics: dict[str, Any]
    meta: dict[str, Any]


def _versions_dir(model_dir: Path) -> Path:
    return Path(model_dir) / "versions"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def current_version(model_dir: Path) -> int | None:
    """The number ``current`` points at, or None when nothing was promoted yet."""
    link = Path(model_dir) / "current"
    try:
        target = os.readlink(link)
    except OSError:
        return None
    name = Path(target).name
    return int(name) if name.isdigit() else None


def _numbers(model_dir: Path) -> list[int]:
    vdir = _versions_dir(model_dir)
    if not vdir.is_dir():
        return []
    return sorted(int(p.name) for p in vdir.iterdir() if p.name.isdigit() and p.is_dir())


def get_version(model_dir: Path, number: int) -> ModelVersion:
    path = _versions_dir(model_dir) / str(number)
    if not (path / MODEL_FILE).is_file():
        raise RegistryError(f"{model_dir} has no version {number}; see `aiopsd model list`")
    meta = _read_json(path / "meta.json")
    status: Status = meta.get("status", "candidate")
    return ModelVersion(number=number, path=path, status=status, created_at=str(meta.get("created_at", "")),
                        current=current_version(model_dir) == number,
                        metrics=_read_json(path / "metrics.json"), meta=meta)


def list_versions(model_dir: Path) -> list[ModelVersion]:
    """Every stored version, oldest first."""
    return [get_version(model_dir, n) for n in _numbers(model_dir)]


def add_version(model_dir: Path, model: Any, *, metrics: dict[str, Any], meta: dict[str, Any] | None = None,
                status: Status = "candidate", now: datetime | None = None) -> ModelVersion:
    """Store ``model`` (joblib) with its metrics as the next version number (not promoted)."""
    vdir = _versions_dir(model_dir)
    vdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=vdir))
    try:
        joblib.dump(model, tmp / MODEL_FILE)
        full_meta = {**(meta or {}), "status": status,
                     "created_at": (now or datetime.now(UTC)).isoformat(timespec="seconds")}
        _write_json_atomic(tmp / "metrics.json", metrics)
        _write_json_atomic(tmp / "meta.json", full_meta)
        while True:
            number = (max(_numbers(model_dir), default=0)) + 1
            try:
                os.rename(tmp, vdir / str(number))  # fails if a concurrent writer took the number
                break
            except OSError:
                if (vdir / str(number)).exists():
                    continue
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return get_version(model_dir, number)


def _switch(model_dir: Path, number: int, *, kind: str, reason: str, now: datetime | None) -> ModelVersion:
    model_dir = Path(model_dir)
    link = model_dir / "current"
    tmp = model_dir / f".current.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.join("versions", str(number)), tmp)
    os.replace(tmp, link)
    with (model_dir / "history.jsonl").open("a") as fh:
        fh.write(json.dumps({"version": number, "kind": kind, "reason": reason,
                             "at": (now or datetime.now(UTC)).isoformat(timespec="seconds")}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return get_version(model_dir, number)


def promote(model_dir: Path, number: int, *, reason: str = "promoted by hand",
            now: datetime | None = None) -> ModelVersion:
    """Make ``number`` the served version. Rejected versions cannot be promoted."""
    return _serve(model_dir, number, kind="promote", reason=reason, now=now)


def _serve(model_dir: Path, number: int, *, kind: str, reason: str, now: datetime | None) -> ModelVersion:
    v = get_version(model_dir, number)
    if v.status == "rejected":
        raise RegistryError(f"version {number} was rejected by the retrain gate and is never served; "
                            "promote another version")
    if v.status != "promoted":
        _write_json_atomic(v.path / "meta.json", {**v.meta, "status": "promoted"})
    return _switch(model_dir, number, kind=kind, reason=reason, now=now)


def history(model_dir: Path) -> list[dict[str, Any]]:
    path = Path(model_dir) / "history.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(dict(json.loads(line)))
        except ValueError:
            continue
    return out


def served_stack(model_dir: Path) -> list[int]:
    """The chain of served versions from ``history.jsonl``: a promote pushes, a rollback pops."""
    stack: list[int] = []
    for h in history(model_dir):
        v = int(h["version"])
        if h.get("kind") == "rollback" and stack:
            stack.pop()
            if stack and stack[-1] == v:
                continue
        stack.append(v)
    return stack


def rollback(model_dir: Path, *, to: int | None = None, now: datetime | None = None) -> ModelVersion:
    """Serve the version that was served before the present one (or ``to``).

    Repeated rollbacks walk further back (3 -> 2 -> 1), they do not toggle.
    """
    cur = current_version(model_dir)
    if to is None:
        stack = served_stack(model_dir)
        if cur is None or len(stack) < 2:
            raise RegistryError(f"{model_dir} has no earlier served version to roll back to")
        to = stack[-2]
    return _serve(model_dir, to, kind="rollback", reason=f"rollback from {cur}", now=now)


def load_current(model_dir: Path) -> tuple[int, Any]:
    """(version number, unpickled model) of ``current``."""
    number = current_version(model_dir)
    if number is None:
        raise RegistryError(f"{model_dir} has no current model; promote a version first")
    return number, joblib.load(Path(model_dir) / "current" / MODEL_FILE)
