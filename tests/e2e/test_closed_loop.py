"""The closed loop end to end: real Prometheus, Alertmanager, ansible-runner and the daemon process.

A small service exports ``svc_healthy{svc=...}``; Prometheus alerts ``SvcDown`` on 0 and
Alertmanager delivers it to the webhook. The rule restarts the service with the shipped
``restart_service.yml`` (a POST to the service's control endpoint) and verifies with PromQL
that it is healthy again:

- ``good-1`` comes back after the restart: ``verified``;
- ``stuck-1`` and ``stuck-2`` answer the restart with 200 but stay broken: the playbook
  "succeeds", the outcome is ``not_verified``, each escalates once to a local webhook receiver
  and is never restarted again; the second one demotes the rule (min_success 2 of the last 3);
- ``stuck-3`` breaks afterwards: the rule still decides, but the run waits for approval.
"""

from __future__ import annotations

import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from aiopsd.demo import stack
from tests.receivers import http_receiver
from tests.support import REPO, running_daemon, wait_for, write_config


class Services:
    """svc -> healthy; ``fixable`` services come back when restarted, the others do not."""

    def __init__(self) -> None:
        self.healthy = {"good-1": False, "stuck-1": False, "stuck-2": False, "stuck-3": True}
        self.restarts: dict[str, int] = {}
        self.lock = threading.Lock()

    def exposition(self) -> bytes:
        with self.lock:
            lines = [f'svc_healthy{{svc="{s}"}} {1 if ok else 0}' for s, ok in sorted(self.healthy.items())]
        return ("# TYPE svc_healthy gauge\n" + "\n".join(lines) + "\n").encode()

    def restart(self, svc: str) -> None:
        with self.lock:
            self.restarts[svc] = self.restarts.get(svc, 0) + 1
            if svc.startswith("good-"):
                self.healthy[svc] = True


def serve(services: Services) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._send(200, services.exposition())

        def do_POST(self) -> None:
            services.restart(self.path.rsplit("/", 1)[-1])
            self._send(200, b'{"restarted": true}\n')

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


ALERTS: dict[str, object] = {
    "groups": [
        {
            "name": "svc",
            "rules": [{"alert": "SvcDown", "expr": "svc_healthy == 0", "for": "0s", "labels": {"severity": "page"}}],
        }
    ]
}


def rules(control: str) -> dict[str, Any]:
    return {
        "rules": [
            {
                "name": "restart-svc",
                "match": {"kind": "alert", "labels": {"alertname": "SvcDown"}},
                "action": {
                    "playbook": "restart_service.yml",
                    "targets": "localhost",
                    "extra_vars": {"restart_url": control + "/restart/{{ labels.svc }}"},
                },
                "verify": {
                    "after": "2s",
                    "within": "20s",
                    "check": {"promql": 'svc_healthy{svc="{{ labels.svc }}"} == 1'},
                },
                "on_not_verified": {
                    "notify": {
                        "channel": "oncall",
                        "message": "restart of {{ labels.svc }} (run {{ run.id }}) did not fix it",
                    }
                },
                "min_success": {"of_last": 3, "verified": 2},
                "guards": {"timeout": "2m"},
            }
        ]
    }


def start_stack(tmp_path: Path, control: str, loop: dict[str, Any]) -> tuple[Path, int, stack.Service, stack.Service]:
    """The rules and the restart playbook in ``tmp_path``, a real Alertmanager posting to the daemon's
    port-to-be and a real Prometheus scraping the service at ``control`` with the alert rules."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "loop.yaml").write_text(yaml.safe_dump(loop))
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    shutil.copy(REPO / "playbooks" / "restart_service.yml", playbooks)
    daemon_port = stack.free_port()
    am = stack.start_alertmanager(tmp_path / "am", webhook_url=f"http://127.0.0.1:{daemon_port}/api/v1/alerts")
    prom = stack.start_prometheus(
        tmp_path / "prom",
        interval="1s",
        alertmanager_port=am.port,
        rules=ALERTS,
        scrape=[{"job_name": "svc", "static_configs": [{"targets": [control.removeprefix("http://")]}]}],
    )
    return playbooks, daemon_port, am, prom


def test_verified_not_verified_escalation_demotion_and_approval(tmp_path: Path) -> None:
    services = Services()
    server = serve(services)
    control = f"http://127.0.0.1:{server.server_address[1]}"
    playbooks, daemon_port, am, prom = start_stack(tmp_path, control, rules(control))
    try:
        with http_receiver() as oncall:
            cfg = write_config(
                tmp_path,
                listen=f"127.0.0.1:{daemon_port}",
                playbooks_dir=str(playbooks),
                prometheus={"url": prom.url, "timeout": "5s"},
                notify_channels={"oncall": {"kind": "webhook", "url": f"{oncall.url}/page"}},
            )
            with stack.stopping(am, prom), running_daemon(cfg) as daemon:

                def outcomes() -> dict[str, str] | None:
                    runs = daemon.get("/api/v1/actions?limit=50")
                    got = {
                        r["targets"][0] + ":" + str(r["id"]): (r["verification"] or {}).get("outcome", "")
                        for r in runs
                        if r["kind"] == "playbook"
                    }
                    done = [o for o in got.values() if o in ("verified", "not_verified", "unknown")]
                    return got if len(done) >= 3 else None

                wait_for(outcomes, 150, interval=1, what="three restarts to be verified or not")
                runs = daemon.get("/api/v1/actions?limit=50")
                restarts = [r for r in runs if r["kind"] == "playbook"]
                by_svc = {r["action"]["extra_vars"]["restart_url"].rsplit("/", 1)[-1]: r for r in restarts}
                assert set(by_svc) == {"good-1", "stuck-1", "stuck-2"}, restarts
                assert all(r["status"] == "succeeded" for r in restarts)  # rc 0 for every restart ...
                assert by_svc["good-1"]["verification"]["outcome"] == "verified"  # ... one fixed it
                for svc in ("stuck-1", "stuck-2"):
                    v = by_svc[svc]["verification"]
                    assert v["outcome"] == "not_verified", v
                    assert "returned no samples" in v["reason"]

                # Each not-verified restart escalated once to the on-call webhook.
                pages = wait_for(lambda: oncall.requests if len(oncall.requests) >= 2 else None, 60, what="pages")
                messages = sorted(str(p.body["message"]) for p in pages)
                assert messages == [
                    f"restart of stuck-1 (run {by_svc['stuck-1']['id']}) did not fix it",
                    f"restart of stuck-2 (run {by_svc['stuck-2']['id']}) did not fix it",
                ]

                # The rule is demoted: the next finding is decided but waits for approval.
                [rule] = daemon.get("/api/v1/rules")
                assert rule["health"]["demoted"], rule
                assert rule["health"]["verified"] == 1 and rule["health"]["judged"] == 3
                with services.lock:
                    services.healthy["stuck-3"] = False

                def held() -> list[dict[str, Any]] | None:
                    found = daemon.get("/api/v1/actions?status=awaiting_approval")
                    return found or None

                [waiting] = wait_for(held, 60, what="the next restart to wait for approval")
                assert waiting["action"]["extra_vars"]["restart_url"].endswith("/stuck-3")
                decision = daemon.get(f"/api/v1/actions/{waiting['id']}")["decision"]
                assert "rule demoted" in decision["reason"]

                # Never a second restart of a not-verified finding, and the page says why.
                time.sleep(3)
                assert services.restarts == {"good-1": 1, "stuck-1": 1, "stuck-2": 1}
                codes = [d["code"] for d in daemon.get("/api/v1/decisions?limit=100")]
                assert codes.count("not_verified_before") == 2 and codes.count("on_not_verified") == 2
                page = httpx.get(daemon.url + "/", timeout=10).text
                assert "demoted: needs approval" in page and "not verified" in page
                metrics = httpx.get(daemon.url + "/metrics", timeout=10).text
                assert 'aiopsd_remediation_outcomes_total{outcome="not_verified",rule="restart-svc"} 2.0' in metrics
                assert 'aiopsd_remediation_outcomes_total{outcome="verified",rule="restart-svc"} 1.0' in metrics
                kinds = [e["kind"] for e in daemon.get("/api/v1/audit?limit=500")]
                assert kinds.count("rule_demoted") == 1 and kinds.count("verification") == 3
    finally:
        server.shutdown()


def test_a_prometheus_outage_during_the_verify_window_is_unknown_not_not_verified(tmp_path: Path) -> None:
    services = Services()
    services.healthy = {"stuck-1": False}
    server = serve(services)
    control = f"http://127.0.0.1:{server.server_address[1]}"
    loop = rules(control)
    loop["rules"][0]["verify"]["after"] = "6s"
    playbooks, daemon_port, am, prom = start_stack(tmp_path, control, loop)
    try:
        with http_receiver() as oncall:
            cfg = write_config(
                tmp_path,
                listen=f"127.0.0.1:{daemon_port}",
                playbooks_dir=str(playbooks),
                prometheus={"url": prom.url, "timeout": "2s"},
                notify_channels={"oncall": {"kind": "webhook", "url": f"{oncall.url}/page"}},
            )
            with stack.stopping(am, prom), running_daemon(cfg) as daemon:

                def succeeded() -> dict[str, Any] | None:
                    runs = [r for r in daemon.get("/api/v1/actions") if r["status"] == "succeeded"]
                    return runs[0] if runs else None

                run = wait_for(succeeded, 90, interval=0.2, what="the restart to succeed")
                assert run["verification"]["outcome"] == "pending"
                prom.stop()  # Prometheus goes away before the first check is due

                def decided() -> dict[str, Any] | None:
                    v = daemon.get(f"/api/v1/actions/{run['id']}")["run"]["verification"]
                    return v if v["outcome"] != "pending" else None

                v = wait_for(decided, 60, what="the verification to end")
                assert v["outcome"] == "unknown", v
                assert "unreachable" in v["reason"]
                time.sleep(2)
                codes = [d["code"] for d in daemon.get("/api/v1/decisions")]
                assert "on_not_verified" not in codes and "not_verified_before" not in codes
                assert oncall.requests == []  # missing data is never a verdict: nobody is paged for it
    finally:
        server.shutdown()
