"""The models' estimated and realised performance (this process's exports) beside their drift findings.

The values are the ones ``/metrics`` exports (``aiopsd_performance_*``): kept by the replica
that polls the prediction logs (the leader), so another replica shows the findings only.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiopsd.daemon.http.views import DriftFindingRef, PerformanceView
from aiopsd.daemon.runtime import Runtime
from aiopsd.models import Finding, FindingKind, FindingStatus


def performance(runtime: Runtime, findings: Sequence[Finding]) -> list[PerformanceView]:
    """One row per (model, metric) estimated by a prediction log of the running config."""
    latest = runtime.metrics.performance.latest()
    drift = [f for f in findings if f.kind == FindingKind.DRIFT and f.status == FindingStatus.FIRING]
    out: list[PerformanceView] = []
    for cfg in runtime.settings.prediction_logs:
        metric = cfg.estimate_metric
        if metric is None:
            continue
        values = latest.get((cfg.model, metric), {})
        out.append(
            PerformanceView(
                model=cfg.model,
                metric=metric,
                estimate=values.get("estimate"),
                realised=values.get("realised"),
                estimation_error=values.get("estimation_error"),
                drift_findings=[
                    DriftFindingRef(id=f.id, summary=f.summary, labels=dict(f.labels))
                    for f in drift
                    if f.labels.get("model") == cfg.model
                ],
            )
        )
    return out
