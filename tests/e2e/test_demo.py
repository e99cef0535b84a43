"""`aiopsd demo` is the first thing a new user runs: it must tell the whole story and clean up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import tool_env

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_demo_shows_alert_anomaly_and_a_successful_playbook(tmp_path: Path) -> None:
    summary = tmp_path / "s.json"
    res = subprocess.run([sys.executable, "-m", "aiopsd", "demo", "--duration", "75", "--summary-json", str(summary),
                          "--workdir", str(tmp_path / "demo")], env=tool_env(), capture_output=True, text=True,
                         timeout=400, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(summary.read_text())
    assert data["alerts_received"] >= 1
    assert any(f["kind"] == "anomaly" for f in data["findings"])
    assert any(f["kind"] == "alert" for f in data["findings"])
    ok = {a["action"] for a in data["actions"] if a["status"] == "succeeded"}
    assert {"restart_service.yml", "collect_diagnostics.yml"} <= ok, data["actions"]
    assert "restart-on-latency-anomaly -> act" in res.stdout
    # Everything the demo started is gone.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(tmp_path) not in ps
