"""The model registries the page shows: directories named by prediction logs and retrain rules.

Reads ``versions/<n>/metrics.json`` and the ``current`` pointer of each directory
into :class:`~aiopsd.daemon.http.views.ModelView`; reading only, never the models.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiopsd.daemon.http.views import ModelVersionView, ModelView
from aiopsd.daemon.runtime import Runtime

logger = logging.getLogger(__name__)


def model_dirs(runtime: Runtime) -> list[Path]:
    """Model registries of the prediction logs, named by retrain rules, and any under ``<state_dir>/models``."""
    dirs: list[Path] = [p.model_dir for p in runtime.settings.prediction_logs if p.model_dir is not None]
    for r in runtime.rules_by_name().values():
        raw = r.action.model_dump(mode="json").get("retrain")
        if isinstance(raw, dict) and raw.get("model_dir") and "{" not in str(raw["model_dir"]):
            dirs.append(Path(str(raw["model_dir"])))
    registry = Path(runtime.settings.state_dir) / "models"
    if registry.is_dir():
        dirs += sorted(p for p in registry.iterdir() if p.is_dir())
    unique = list(dict.fromkeys(dirs))
    return [d for d in unique if (d / "versions").is_dir()]


def read_model(path: Path) -> ModelView:
    current = _current_version(path)
    versions: list[ModelVersionView] = []
    for vdir in sorted((path / "versions").iterdir(), key=_version_key, reverse=True):
        if not vdir.is_dir():
            continue
        metrics: dict[str, float | int | str | bool | None] = {}
        created = None
        mfile = vdir / "metrics.json"
        if mfile.is_file():
            try:
                raw = json.loads(mfile.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                metrics = {"error": f"unreadable metrics.json: {exc}"}
            else:
                metrics = _flat_scalars(raw) if isinstance(raw, dict) else {}
            created = datetime.fromtimestamp(mfile.stat().st_mtime, UTC)
        versions.append(
            ModelVersionView(version=vdir.name, current=vdir.name == current, created_at=created, metrics=metrics)
        )
    return ModelView(name=path.name, path=str(path), current=current, versions=versions)


def _current_version(path: Path) -> str | None:
    pointer = path / "current"
    if pointer.is_symlink():
        return Path(str(pointer.readlink())).name
    if pointer.is_file():
        text = pointer.read_text(encoding="utf-8").strip()
        return Path(text).name or None
    return None


def _version_key(p: Path) -> tuple[int, str]:
    return (int(p.name), "") if p.name.isdigit() else (-1, p.name)


def _flat_scalars(raw: dict[str, Any], prefix: str = "") -> dict[str, float | int | str | bool | None]:
    out: dict[str, float | int | str | bool | None] = {}
    for k, v in raw.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_scalars(v, f"{key}."))
        elif v is None or isinstance(v, bool | int | str):
            out[key] = v
        elif isinstance(v, float):
            out[key] = v if math.isfinite(v) else None
    return out


def models(runtime: Runtime) -> list[ModelView]:
    out: list[ModelView] = []
    for d in model_dirs(runtime):
        try:
            out.append(read_model(d))
        except OSError as exc:
            logger.warning("cannot read model registry %s: %s", d, exc)
    return out
