"""Evidently data-drift reports (HTML + JSON) as the human-readable evidence of a drift finding.

Evidently 0.7 API: ``Report([DataDriftPreset()]).run(current_data=Dataset,
reference_data=Dataset)`` returns a snapshot with ``save_html``/``save_json``.
Evidently is slow next to :mod:`aiopsd.detectors.drift` (see ``bench/drift.py``),
so the daemon renders a report only once drift has fired, not per window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    json: Path


@dataclass(frozen=True)
class EvidentlyVerdict:
    """Evidently's own verdict: dataset drift (share of drifted columns >= ``drift_share``) and columns."""

    dataset_drift: bool
    drifted_columns: tuple[str, ...]
    share: float


def column_types(
    frame: pd.DataFrame, columns: list[str] | None = None, categorical: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """(numerical, categorical) column names, by dtype unless listed as categorical (same rule as
    :func:`aiopsd.detectors.drift.profile_reference`)."""
    cat = set(categorical or [])
    names = list(frame.columns) if columns is None else columns
    num = [
        c
        for c in names
        if c not in cat
        and pd.api.types.is_numeric_dtype(frame[c].dtype)
        and not pd.api.types.is_bool_dtype(frame[c].dtype)
    ]
    return num, [c for c in names if c not in num]


def _snapshot(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    preset_kwargs: dict[str, Any] | None,
) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = numerical + categorical
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    ref = Dataset.from_pandas(reference[cols], data_definition=definition)
    cur = Dataset.from_pandas(current.reindex(columns=cols), data_definition=definition)
    return Report([DataDriftPreset(**(preset_kwargs or {}))]).run(current_data=cur, reference_data=ref)


def run_data_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: list[str] | None = None,
    categorical: list[str] | None = None,
    preset_kwargs: dict[str, Any] | None = None,
) -> EvidentlyVerdict:
    """Run ``DataDriftPreset`` (defaults unless ``preset_kwargs``) and return its verdict only."""
    num, cat = column_types(reference, columns, categorical)
    return verdict(_snapshot(reference, current, num, cat, preset_kwargs).dict())


def verdict(snapshot: dict[str, Any]) -> EvidentlyVerdict:
    """Read Evidently's verdict from a snapshot dict (``snapshot.dict()``)."""
    drifted: list[str] = []
    share, threshold = 0.0, 0.5
    for m in snapshot.get("metrics", []):
        cfg = m.get("config", {})
        kind = str(cfg.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            share = float(m["value"]["share"])
            threshold = float(cfg.get("drift_share", 0.5))
        elif kind.endswith("ValueDrift"):
            method, thr, value = str(cfg.get("method", "")), float(cfg.get("threshold", 0.05)), m.get("value")
            if value is None:
                continue
            # p-value methods drift below the threshold; distance methods (Wasserstein, Jensen-Shannon) above.
            is_p = re.search(r"p_value", method) is not None
            if (float(value) < thr) if is_p else (float(value) >= thr):
                drifted.append(str(cfg.get("column")))
    return EvidentlyVerdict(dataset_drift=share >= threshold and share > 0, drifted_columns=tuple(drifted), share=share)


def render_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out_dir: Path,
    *,
    name: str = "drift",
    columns: list[str] | None = None,
    categorical: list[str] | None = None,
) -> ReportPaths:
    """Render ``DataDriftPreset`` for ``current`` vs ``reference`` into ``out_dir/NAME.html`` and ``.json``.

    Columns default to the reference's columns, typed as in the detector.
    Files are written under temporary names and renamed, so a reader never
    sees half a report.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num, cat = column_types(reference, columns, categorical)
    snap = _snapshot(reference, current, num, cat, None)
    paths = ReportPaths(html=out_dir / f"{name}.html", json=out_dir / f"{name}.json")
    tmp_html, tmp_json = out_dir / f".{name}.html.tmp", out_dir / f".{name}.json.tmp"
    snap.save_html(str(tmp_html))
    snap.save_json(str(tmp_json))
    tmp_html.replace(paths.html)
    tmp_json.replace(paths.json)
    return paths
