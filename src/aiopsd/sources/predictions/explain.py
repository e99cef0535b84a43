"""A drift result as a finding's details: per-column tests and the ranked explanation."""

from __future__ import annotations

from typing import Any

from aiopsd.detectors.drift.window import DriftResult


def columns(result: DriftResult) -> dict[str, Any]:
    cols = {
        name: {
            "test": c.test,
            "statistic": c.statistic,
            "p_value": c.p_value,
            "psi": c.psi,
            "drift": c.drift,
            "missing_rate_reference": c.missing_rate_reference,
            "missing_rate_window": c.missing_rate_window,
            "new_category_share": c.new_category_share,
        }
        for name, c in result.columns.items()
    }
    out: dict[str, Any] = {
        "columns": cols,
        "drifted": list(result.drifted),
        "drift_score": result.score,
        "explanation": explanation(result),
    }
    if result.performance is not None:
        out["performance"] = result.performance.model_dump(mode="json")
    return out


def explanation(result: DriftResult) -> list[dict[str, Any]]:
    """Drifted columns ranked by effect size (PSI), each with the values that gained or lost share."""
    return [
        {
            "column": c.name,
            "test": c.test,
            "psi": c.psi,
            "p_value": c.p_value,
            "shifts": [s.model_dump(mode="json") for s in c.shifts],
        }
        for c in result.ranked()
    ]
