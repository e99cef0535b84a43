"""The reference profile: everything a window is compared with, computed once."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from aiopsd.detectors.drift.stats import FloatArray, tie_term

ColumnKind = Literal["numeric", "categorical"]
Task = Literal["regression", "classification"]
Role = Literal["feature", "prediction"]

PSI_BINS = 10
ATOM_MIN = 5
ATOM_SHARE = 0.01
"""A numeric value held by at least ``max(ATOM_MIN, ATOM_SHARE * n)`` of the ``n`` reference rows is a
point mass of its own. Only heavy atoms: the set is chosen on the reference, so atoms just above the
threshold have their share over-estimated (selection), which a 100,000-row window would see."""


def atom_threshold(n: int) -> int:
    return max(ATOM_MIN, math.ceil(ATOM_SHARE * n))


MAX_CLASSIFICATION_CLASSES = 20
"""A numeric label with at most this many distinct values is treated as classes."""


@dataclass(frozen=True)
class ColumnProfile:
    """One reference column: sorted finite values or category counts, and its missing count."""

    name: str
    kind: ColumnKind
    role: Role
    total: int
    missing: int
    sorted_values: FloatArray = field(default_factory=lambda: np.empty(0))
    tie_term: float = 0.0
    psi_edges: FloatArray = field(default_factory=lambda: np.empty(0))
    psi_shares: FloatArray = field(default_factory=lambda: np.empty(0))
    category_counts: dict[str, int] = field(default_factory=dict)
    atom_counts: dict[str, int] = field(default_factory=dict)
    """Numeric point masses: values held by at least :data:`ATOM_MIN` reference rows (keyed by
    ``repr(float)``), plus the key ``"rest"`` for every other finite value. Empty when none."""


@dataclass(frozen=True)
class PerformanceProfile:
    """Reference model quality, for performance drift when labels exist."""

    task: Task
    prediction: str
    label: str
    rows: int
    abs_errors_sorted: FloatArray = field(default_factory=lambda: np.empty(0))
    abs_errors_tie_term: float = 0.0
    correct: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceProfile:
    """Built by :func:`profile_reference`; immutable and picklable."""

    rows: int
    columns: dict[str, ColumnProfile]
    performance: PerformanceProfile | None = None


def _is_numeric(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s.dtype)) and not pd.api.types.is_bool_dtype(s.dtype)


def category_counts(s: pd.Series) -> dict[str, int]:
    """Counts of each category as a string, missing values left out (``1`` and ``"1"`` merge).

    Counted on the raw values first (hashing, fast), then the few distinct keys are
    turned into strings: ``astype(str)`` on every row costs 10x more on 100k rows.
    """
    out: dict[str, int] = {}
    for k, v in s.value_counts(dropna=False, sort=False).items():  # dropna=True costs an isna pass
        if pd.isna(cast(Any, k)):
            continue
        key = str(k)
        out[key] = out.get(key, 0) + int(v)
    return out


def numeric_values(s: pd.Series) -> FloatArray:
    """Finite float values of a column; non-numeric entries count as missing."""
    arr = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    out: FloatArray = arr[np.isfinite(arr)]
    return out


def _numeric_profile(name: str, s: pd.Series, role: Role) -> ColumnProfile:
    vals = np.sort(numeric_values(s))
    edges = np.unique(np.quantile(vals, np.linspace(0, 1, PSI_BINS + 1)[1:-1])) if vals.size else np.empty(0)
    bins = np.searchsorted(edges, vals, side="right")
    shares = np.bincount(bins, minlength=edges.size + 1) / max(vals.size, 1)
    return ColumnProfile(
        name=name,
        kind="numeric",
        role=role,
        total=len(s),
        missing=len(s) - vals.size,
        sorted_values=vals,
        tie_term=tie_term(vals),
        psi_edges=edges,
        psi_shares=shares.astype(np.float64),
        atom_counts=atoms(vals),
    )


def atom_key(v: float) -> str:
    return repr(float(v))


def atoms(sorted_vals: FloatArray) -> dict[str, int]:
    """Point masses of a numeric column (see :func:`atom_threshold`) and the ``rest`` count."""
    values, counts = np.unique(sorted_vals, return_counts=True)
    keep = counts >= atom_threshold(int(sorted_vals.size))
    if not keep.any():
        return {}
    out = {atom_key(v): int(c) for v, c in zip(values[keep], counts[keep], strict=True)}
    out["rest"] = int(sorted_vals.size - counts[keep].sum())
    return out


def _categorical_profile(name: str, s: pd.Series, role: Role) -> ColumnProfile:
    counts = category_counts(s)
    return ColumnProfile(
        name=name,
        kind="categorical",
        role=role,
        total=len(s),
        missing=len(s) - sum(counts.values()),
        category_counts=counts,
    )


def infer_task(label: pd.Series) -> Task:
    """Classification unless the label is numeric with more than 20 distinct values."""
    if _is_numeric(label) and label.nunique(dropna=True) > MAX_CLASSIFICATION_CLASSES:
        return "regression"
    return "classification"


def performance_metrics(task: Task, y_true: pd.Series, y_pred: pd.Series) -> dict[str, float]:
    """MAE/MSE for regression; accuracy and macro F1 for classification (rows with both present)."""
    from sklearn.metrics import f1_score

    mask = y_true.notna() & y_pred.notna()
    if task == "regression":
        err = pd.to_numeric(y_pred[mask], errors="coerce") - pd.to_numeric(y_true[mask], errors="coerce")
        e = err.to_numpy(dtype=np.float64, na_value=np.nan)
        e = e[np.isfinite(e)]
        if e.size == 0:
            return {}
        return {"mae": float(np.mean(np.abs(e))), "mse": float(np.mean(e**2))}
    t = y_true[mask].astype(str).to_numpy()
    p = y_pred[mask].astype(str).to_numpy()
    if t.size == 0:
        return {}
    return {"accuracy": float(np.mean(t == p)), "f1": float(f1_score(t, p, average="macro", zero_division=0.0))}


def abs_errors(y_true: pd.Series, y_pred: pd.Series) -> FloatArray:
    e = (pd.to_numeric(y_pred, errors="coerce") - pd.to_numeric(y_true, errors="coerce")).to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    out: FloatArray = np.abs(e[np.isfinite(e)])
    return out


def correct_flags(y_true: pd.Series, y_pred: pd.Series) -> npt.NDArray[np.bool_]:
    mask = (y_true.notna() & y_pred.notna()).to_numpy()
    return np.asarray(y_true.astype(str).to_numpy()[mask] == y_pred.astype(str).to_numpy()[mask])


def profile_reference(
    df: pd.DataFrame,
    *,
    columns: Iterable[str] | None = None,
    categorical: Iterable[str] = (),
    prediction: str | None = None,
    label: str | None = None,
    task: Task | None = None,
) -> ReferenceProfile:
    """Profile a reference data frame once.

    ``columns`` defaults to every column except ``label``. A column is numeric
    when its dtype is numeric (not bool) and it is not listed in ``categorical``;
    everything else is categorical (values compared as strings). ``prediction``
    is tested like a feature (prediction drift). When both ``prediction`` and
    ``label`` are given, the reference performance is recorded too (``task``
    inferred from the label when not given: see :func:`infer_task`).
    """
    cat = set(categorical)
    names = [c for c in (df.columns if columns is None else columns) if c != label]
    if prediction is not None and prediction not in names and prediction in df.columns:
        names.append(prediction)
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise ValueError(f"reference has no column(s) {missing}; pass columns= that exist")
    profiles: dict[str, ColumnProfile] = {}
    for name in names:
        s = df[name]
        role: Role = "prediction" if name == prediction else "feature"
        if _is_numeric(s) and name not in cat:
            profiles[name] = _numeric_profile(name, s, role)
        else:
            profiles[name] = _categorical_profile(name, s, role)
    perf = None
    if prediction is not None and label is not None and label in df.columns and prediction in df.columns:
        t: Task = task or infer_task(df[label])
        y, p = df[label], df[prediction]
        if t == "regression":
            errs = np.sort(abs_errors(y, p))
            perf = PerformanceProfile(
                task=t,
                prediction=prediction,
                label=label,
                rows=int(errs.size),
                abs_errors_sorted=errs,
                abs_errors_tie_term=tie_term(errs),
                metrics=performance_metrics(t, y, p),
            )
        else:
            flags = correct_flags(y, p)
            perf = PerformanceProfile(
                task=t,
                prediction=prediction,
                label=label,
                rows=int(flags.size),
                correct=int(flags.sum()),
                metrics=performance_metrics(t, y, p),
            )
    return ReferenceProfile(rows=len(df), columns=profiles, performance=perf)
