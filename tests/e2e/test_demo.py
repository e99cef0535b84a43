"""`aiopsd demo` is the first thing a new user runs: it must tell the whole story and clean up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import tool_env


def test_demo_shows_alert_anomaly_drift_and_successful_remediations(tmp_path: Path) -> None:
    summary = tmp_path / "s.json"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "aiopsd",
            "demo",
            "--duration",
            "180",
            "--until-done",
            "--summary-json",
            str(summary),
            "--workdir",
            str(tmp_path / "demo"),
        ],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(summary.read_text())
    assert data["alerts_received"] >= 1
    assert any(f["kind"] == "anomaly" for f in data["findings"])
    assert any(f["kind"] == "alert" for f in data["findings"])
    ok = {a["action"] for a in data["actions"] if a["status"] == "succeeded"}
    assert {"restart_service.yml", "collect_diagnostics.yml"} <= ok, data["actions"]
    assert any(f["kind"] == "drift" and f["labels"]["model"] == "churn" for f in data["findings"])
    assert any(f["labels"].get("test") == "estimated_performance" for f in data["findings"]), data["findings"]
    [retrain] = [a for a in data["actions"] if a["kind"] == "retrain"]
    assert retrain["status"] == "succeeded", retrain
    assert "approved by the demo" in res.stdout
    served = (tmp_path / "demo" / "models" / "churn" / "current").resolve().name
    if "gate passed" in retrain["result"]:
        assert served == "2"
    else:
        assert "gate failed" in retrain["result"] and served == "1"
    assert "restart-on-latency-anomaly -> act" in res.stdout
    # One remediation verified (the latency restart), one not (the restart on the error burst), escalated.
    outcomes = {a["rule"]: a["verification"] for a in data["actions"] if a["verification"]}
    assert outcomes.get("restart-on-latency-anomaly") == "verified", data["actions"]
    assert outcomes.get("restart-on-error-burst") == "not_verified", data["actions"]
    assert any(d["code"] == "on_not_verified" for d in data["decisions"])
    # Everything the demo started is gone.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(tmp_path) not in ps
