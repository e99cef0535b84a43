"""End to end on the real components: Prometheus, Alertmanager, ansible-runner, the daemon process.

An error burst becomes a Prometheus alert, goes through Alertmanager to the webhook
and runs the diagnostics playbook; a latency spike in Prometheus data becomes an
anomaly finding and runs the restart playbook, which heals the workload. Each
playbook must run exactly once and the API must show both runs with their output.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import yaml

from aiopsd.demo import stack
from aiopsd.demo.run import ALERT_RULES
from aiopsd.demo.workload import Workload, serve
from tests.support import running_daemon, wait_for, write_config


def test_alert_and_anomaly_each_run_their_playbook_exactly_once(tmp_path: Path) -> None:
    now = time.time()
    wport = stack.free_port()
    control = f"http://127.0.0.1:{wport}"
    workload = Workload(latency_incident_max=60)
    labels = {"job": "demo", "instance": f"127.0.0.1:{wport}", "control_url": control}
    history = stack.to_openmetrics(
        workload.history(now - 1200, now - 1, 1.0, labels),
        {"demo_api_latency_seconds": "gauge", "demo_api_errors_total": "counter"},
    )
    stack.backfill(tmp_path / "prom" / "data", history, tmp_path)
    server = serve(workload, wport)
    markers, diag = tmp_path / "markers", tmp_path / "diag"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "e2e.yaml").write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "restart-on-anomaly",
                        "match": {"kind": "anomaly", "labels": {"service": "checkout"}},
                        "for": {"count": 2, "window": "1m"},
                        "action": {
                            "playbook": "restart_service.yml",
                            "targets": "{{ labels.host }}",
                            "extra_vars": {
                                "restart_url": "{{ labels.control_url }}/restart",
                                "marker_dir": str(markers),
                                "incident": "anomaly-{{ finding.id }}",
                            },
                        },
                        "guards": {"timeout": "2m"},
                    },
                    {
                        "name": "diagnose-alert",
                        "match": {"kind": "alert", "labels": {"alertname": "DemoHighErrorRate"}},
                        "action": {
                            "playbook": "collect_diagnostics.yml",
                            "targets": "localhost",
                            "extra_vars": {"diagnostics_dir": str(diag), "incident": "alert-{{ finding.id }}"},
                        },
                        "guards": {"timeout": "2m"},
                    },
                ]
            }
        )
    )
    daemon_port = stack.free_port()
    am = stack.start_alertmanager(tmp_path / "am", webhook_url=f"http://127.0.0.1:{daemon_port}/api/v1/alerts")
    prom = stack.start_prometheus(
        tmp_path / "prom",
        interval="1s",
        alertmanager_port=am.port,
        rules=ALERT_RULES,
        tsdb_dir=tmp_path / "prom" / "data",
        scrape=[
            {
                "job_name": "demo",
                "static_configs": [{"targets": [f"127.0.0.1:{wport}"], "labels": {"control_url": control}}],
            }
        ],
    )
    cfg = write_config(
        tmp_path,
        listen=f"127.0.0.1:{daemon_port}",
        prometheus={"url": prom.url, "timeout": "5s", "overlap": "5s"},
        watches=[
            {
                "name": "latency",
                "query": 'demo_api_latency_seconds{job="demo"}',
                "step": "1s",
                "interval": "1s",
                "lookback": "20m",
            }
        ],
    )
    try:
        with stack.stopping(am, prom), running_daemon(cfg) as daemon:
            start = time.time()
            workload.latency_incident_at = start + 3
            workload.error_burst_at = start + 3

            def both_succeeded() -> list[dict[str, object]] | None:
                runs = daemon.get("/api/v1/actions")
                done = [r for r in runs if r["status"] == "succeeded"]
                return runs if len(done) >= 2 else None

            runs = wait_for(both_succeeded, 120, what="both playbooks to succeed")
            time.sleep(5)  # anything that would run twice has had its chance
            runs = daemon.get("/api/v1/actions")
            assert len(runs) == 2, runs
            by_rule = {r["rule"]: r for r in runs}
            assert set(by_rule) == {"restart-on-anomaly", "diagnose-alert"}
            for r in runs:
                assert r["status"] == "succeeded"
                detail = daemon.get(f"/api/v1/actions/{r['id']}")
                assert "PLAY RECAP" in detail["run"]["output"]
                assert detail["decision"]["outcome"] == "act"
                assert detail["finding"]["kind"] in ("anomaly", "alert")
            assert len(list(markers.glob("anomaly-*.json"))) == 1
            assert len(list(diag.glob("alert-*.txt"))) == 1
            assert workload.restarts == 1, "the restart playbook healed the workload exactly once"
            status = daemon.get("/api/v1/status")
            assert status["counts"]["alerts"] >= 1
            assert any(s["name"] == "latency" and s["up"] for s in status["sources"])
            metrics = httpx.get(f"{daemon.url}/metrics", timeout=5).text
            score_lines = [ln for ln in metrics.splitlines() if ln.startswith("aiopsd_anomaly_score{")]
            assert score_lines and all('aiopsd_watch="latency"' in ln for ln in score_lines)
            assert any(ln.startswith("aiopsd_anomaly_yhat_upper{") for ln in metrics.splitlines())
            assert 'aiopsd_action_runs_total{kind="playbook",status="succeeded"} 2.0' in metrics
    finally:
        server.shutdown()
