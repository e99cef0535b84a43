"""Data lineage of a model version: what it was trained on, by what code, from which parent.

The training table (the exact rows and columns ``fit`` saw) is written as CSV to
``<state_dir>/training/<sha256>.csv``; its SHA-256 is the table's content hash,
so ``sha256sum`` checks it and two retrains on the same rows share one file.
:func:`reproduce` retrains from the lineage alone: the parent version's pipeline,
cloned, fitted on that table, gives the same model (same predictions).

The lineage (``meta["lineage"]``) holds: ``rows``, ``time_window`` (first and
last ``timestamp`` of the training rows), ``sources`` (each input file with the
byte range read and its SHA-256), ``table`` (path, sha256), ``label``,
``features`` (in fit order: name, dtype), ``parent`` (version), ``job``, ``estimator`` and
``code`` (aiopsd, scikit-learn, numpy, pandas, python versions).
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Any

import pandas as pd

import aiopsd
from aiopsd.model_store.base import ModelStore, RegistryError

TABLES = "training"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_training_table(table: pd.DataFrame, tables_dir: Path) -> tuple[Path, str]:
    """Write ``table`` as CSV named by its SHA-256 (atomically; kept if it already exists)."""
    data = table.to_csv(index=False).encode()
    digest = hashlib.sha256(data).hexdigest()
    tables_dir.mkdir(parents=True, exist_ok=True)
    path = tables_dir / f"{digest}.csv"
    if not path.is_file():
        tmp = tables_dir / f".{digest}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path, digest


def source(path: Path) -> dict[str, Any]:
    """One input file: path, the byte range read (all of it) and its SHA-256."""
    size = path.stat().st_size
    return {"path": str(path), "bytes": [0, size], "sha256": file_sha256(path)}


def code_versions() -> dict[str, str]:
    import numpy
    import sklearn

    return {
        "aiopsd": aiopsd.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }


def build(
    *,
    table: pd.DataFrame,
    table_path: Path,
    table_sha256: str,
    label: str,
    features: list[str],
    sources: list[dict[str, Any]],
    parent: int | None,
    job: str,
    estimator: Any,
) -> dict[str, Any]:
    window: dict[str, Any] | None = None
    if "timestamp" in table.columns and len(table):
        ts = table["timestamp"]
        window = {"start": str(ts.min()), "end": str(ts.max())}
    return {
        "rows": len(table),
        "time_window": window,
        "sources": sources,
        "table": {"path": str(table_path), "sha256": table_sha256},
        "label": label,
        "features": [{"name": f, "dtype": str(table[f].dtype)} for f in features],
        "parent": parent,
        "job": job,
        "estimator": type(estimator).__name__,
        "code": code_versions(),
    }


def read_table(lineage: dict[str, Any]) -> pd.DataFrame:
    """The training table named by a lineage, after checking its content hash."""
    table = lineage.get("table") or {}
    path = Path(str(table.get("path", "")))
    if not path.is_file():
        raise RegistryError(f"training table {path} is gone; it cannot be reproduced")
    if file_sha256(path) != table.get("sha256"):
        raise RegistryError(f"training table {path} does not match its recorded sha256; it was changed")
    return pd.read_csv(path)


def reproduce(store: ModelStore, number: int) -> Any:
    """Retrain version ``number`` from its lineage: clone the parent's pipeline, fit on the kept table."""
    from sklearn.base import clone

    lineage = store.get(number).meta.get("lineage")
    if not isinstance(lineage, dict):
        raise RegistryError(f"version {number} of {store.label} has no lineage")
    if lineage.get("job") != "sklearn" or lineage.get("parent") is None:
        raise RegistryError(
            f"version {number} was trained by job {lineage.get('job')!r}, not a clone of a "
            "parent version; rerun its command on the kept table instead"
        )
    table = read_table(lineage)
    _, parent = store.load(int(lineage["parent"]))
    features = [str(f["name"]) for f in lineage["features"]]
    return clone(parent).fit(table[features], table[lineage["label"]])
