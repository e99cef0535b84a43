"""The status page and overview API show a model's estimated and realised performance beside its drift."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aiopsd.daemon.http.api import create_app
from aiopsd.daemon.http.auth import Credentials
from aiopsd.models import Finding, FindingKind
from tests.support import make_runtime

pytestmark = pytest.mark.unit


def test_estimate_realised_and_error_are_shown_with_the_models_drift_findings(tmp_path: Path) -> None:
    logs = [
        {"model": "churn", "path": str(tmp_path / "c.jsonl"), "estimate": {"metric": "f1"}},
        {"model": "plain", "path": str(tmp_path / "p.jsonl")},
    ]
    rt = make_runtime(tmp_path, prediction_logs=logs)
    rt.metrics.performance.set("churn", "f1", {"estimate": 0.61, "realised": 0.58, "estimation_error": 0.03})
    now = datetime.now(UTC)
    rt.store.upsert_findings(
        [
            Finding(
                id="est",
                kind=FindingKind.DRIFT,
                source="predictions:churn",
                labels={"model": "churn", "test": "estimated_performance", "metric": "f1"},
                score=2.0,
                starts_at=now,
                last_seen=now,
                summary="churn: estimated f1 <0.610>, reference 0.800",
            )
        ]
    )
    client = TestClient(create_app(rt, Credentials(None, None, None)))
    [perf] = client.get("/api/v1/overview").json()["performance"]
    assert perf["model"] == "churn" and perf["metric"] == "f1"
    assert (perf["estimate"], perf["realised"], perf["estimation_error"]) == (0.61, 0.58, 0.03)
    assert [f["id"] for f in perf["drift_findings"]] == ["est"]
    html = client.get("/").text
    assert 'class="performance stack"' in html and "0.61" in html and "0.03" in html
    assert "estimated f1 &lt;0.610&gt;" in html
    metrics = client.get("/metrics").text
    assert 'aiopsd_performance_estimation_error{metric="f1",model="churn"} 0.03' in metrics
