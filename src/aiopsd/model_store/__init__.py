"""Model versions behind one protocol, with a directory backend and an MLflow Model Registry backend.

``open_store(spec)`` builds the store a :class:`StoreSpec` names; see :mod:`.base` for the contract.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from aiopsd.model_store.base import (
    BACKENDS,
    ModelStore,
    ModelVersion,
    RegistryError,
    Status,
    StoreSpec,
)

__all__ = ["BACKENDS", "ModelStore", "ModelVersion", "RegistryError", "Status", "StoreSpec", "open_store", "spec_for"]


def open_store(spec: StoreSpec) -> ModelStore:
    module, _, cls = BACKENDS[spec.kind].partition(":")
    store: ModelStore = getattr(importlib.import_module(module), cls).from_spec(spec)
    return store


def spec_for(store: StoreSpec | None, *, model: str, model_dir: Path | None) -> StoreSpec | None:
    """A prediction log's store: its ``model_store`` (name defaulting to the log's model), else its model_dir."""
    if store is None:
        return StoreSpec(kind="directory", path=model_dir) if model_dir is not None else None
    if store.kind == "directory" and store.path is None:
        if model_dir is None:
            raise RegistryError(f"model_store of {model} is a directory but names no path (set path or model_dir)")
        return store.model_copy(update={"path": model_dir})
    if store.name is None:
        return store.model_copy(update={"name": model})
    return store
