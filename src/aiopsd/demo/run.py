"""Orchestrate the demo: real Prometheus + Alertmanager, the workload, the daemon; narrate."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console

from aiopsd.demo import stack
from aiopsd.demo.models import DemoModels, lifecycle_news
from aiopsd.demo.workload import Workload, serve
from aiopsd.errors import AiopsdError

HISTORY = 3600.0
STEP = 2.0
LATENCY_INCIDENT_AFTER = 25.0
ERROR_BURST_AFTER = 50.0
DRIFT_AFTER = 35.0

ALERT_RULES: dict[str, object] = {
    "groups": [
        {
            "name": "demo",
            "rules": [
                {
                    "alert": "DemoHighErrorRate",
                    "expr": "sum by (service, host, control_url) (rate(demo_api_errors_total[20s])) > 2",
                    "for": "4s",
                    "labels": {"severity": "warning"},
                    "annotations": {
                        "summary": "{{ $labels.service }} on {{ $labels.host }} answers "
                        '{{ $value | printf "%.1f" }} errors/s'
                    },
                }
            ],
        }
    ]
}


def project_root() -> Path:
    """Where the shipped rules/ and playbooks/ live (the checkout, or $AIOPSD_HOME)."""
    candidates = [Path(os.environ["AIOPSD_HOME"])] if os.environ.get("AIOPSD_HOME") else []
    candidates += [Path(__file__).resolve().parents[3], Path.cwd()]
    for c in candidates:
        if (c / "rules").is_dir() and (c / "playbooks").is_dir():
            return c
    raise AiopsdError("cannot find the shipped rules/ and playbooks/; run from the aiopsd checkout or set AIOPSD_HOME")


@dataclass
class Narrator:
    api: str
    console: Console
    t0: float
    token: str = ""
    approve_after: float = 3.0
    seen: dict[str, Any] = field(default_factory=dict)

    def say(self, style: str, what: str, text: str) -> None:
        dt = time.time() - self.t0
        self.console.print(
            f"[dim]+{int(dt) // 60:02d}:{int(dt) % 60:02d}[/] [{style}]{what:<9}[/] {text}", highlight=False
        )

    def poll(self) -> None:
        try:
            alerts = httpx.get(f"{self.api}/api/v1/alerts?limit=200", timeout=5).json()
            findings = httpx.get(f"{self.api}/api/v1/findings?limit=200", timeout=5).json()
            decisions = httpx.get(f"{self.api}/api/v1/decisions?limit=200", timeout=5).json()
            runs = httpx.get(f"{self.api}/api/v1/actions?limit=200", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return
        for a in reversed(alerts):
            key = f"alert:{a['id']}"
            if key not in self.seen:
                self.seen[key] = a
                self.say(
                    "magenta",
                    "alert",
                    f"{a['alertname']} {a['status']} (from Alertmanager, fingerprint {a['fingerprint'][:8]})",
                )
        for f in reversed(findings):
            key = f"finding:{f['id']}:{f['status']}"
            if key not in self.seen:
                self.seen[key] = f
                verb = "opened" if f["status"] == "firing" else "resolved"
                self.say("yellow" if f["status"] == "firing" else "green", f["kind"], f"{verb}: {f['summary']}")
        for d in reversed(decisions):
            key = f"decision:{d['id']}"
            if key not in self.seen:
                self.seen[key] = d
                on = f" on {','.join(d['targets'])}" if d["targets"] else ""
                self.say(
                    "cyan" if d["outcome"] == "act" else "red",
                    "decision",
                    f"{d['rule']} -> {d['outcome']}{on}: {d['reason']}",
                )
        for r in reversed(runs):
            key = f"run:{r['id']}:{r['status']}"
            if key not in self.seen:
                self.seen[key] = r
                what = r["action"].get("playbook") or r["kind"]
                if r["kind"] == "retrain":
                    params = r["action"].get("retrain", {})
                    where = Path(str(params.get("model_dir") or "")).name
                    what = f"retrain {params.get('model') if where in ('', 'None') else where}"
                style = {"succeeded": "green", "running": "blue"}.get(r["status"], "red")
                extra = f" (rc {r['rc']})" if r["rc"] is not None else ""
                err = f": {r['error']}" if r["error"] else ""
                on = f" on {','.join(r['targets'])}" if r["targets"] else ""
                self.say(style, "action", f"#{r['id']} {what}{on}: {r['status']}{extra}{err}")
                if r["kind"] == "retrain" and r["status"] == "succeeded":
                    self.say("green", "model", r["output"].splitlines()[0] if r["output"] else "retrained")
            v = r.get("verification") or {}
            if v.get("outcome") not in (None, "pending") and f"verify:{r['id']}" not in self.seen:
                self.seen[f"verify:{r['id']}"] = v
                style = {"verified": "green", "not_verified": "red"}.get(v["outcome"], "yellow")
                self.say(style, "verify", f"#{r['id']} {r['rule']}: {v['outcome']}: {v['reason']}")
            if r["status"] == "awaiting_approval":
                self._approve(r)
        for style, what, text in lifecycle_news(self.api, self.seen):
            self.say(style, what, text)

    def _approve(self, run: dict[str, Any]) -> None:
        """Approve a held run after a few seconds, as the on-call person would with `aiopsd approve`."""
        key = f"approve:{run['id']}"
        first = self.seen.setdefault(key, time.time())
        if first is True or time.time() - first < self.approve_after:
            return
        self.seen[key] = True
        r = httpx.post(
            f"{self.api}/api/v1/actions/{run['id']}/approve",
            timeout=10,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        self.say(
            "cyan",
            "approve",
            f"#{run['id']} approved by the demo's on-call stand-in (HTTP {r.status_code}); "
            f"in real life: aiopsd approve {run['id']}",
        )


def run_demo(
    *,
    duration: float | None,
    summary_json: Path | None,
    workdir: Path | None,
    port: int | None,
    console: Console,
    until_done: bool = False,
    model_store: str = "directory",
) -> int:
    root = project_root()
    work = workdir or Path(tempfile.mkdtemp(prefix="aiopsd-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]aiopsd demo[/] — files in {work}")
    now = time.time()
    workload_port = stack.free_port()
    control_url = f"http://127.0.0.1:{workload_port}"
    target_labels = {"job": "demo", "instance": f"127.0.0.1:{workload_port}", "control_url": control_url}
    # The error burst outlasts the restart rule's verify window: its restart is "not verified".
    workload = Workload(error_burst_len=150.0)
    om = stack.to_openmetrics(
        workload.history(now - HISTORY, now - STEP, STEP, target_labels),
        {"demo_api_latency_seconds": "gauge", "demo_api_errors_total": "counter"},
    )
    console.print("backfilling one hour of history with promtool ...")
    stack.backfill(work / "prometheus" / "data", om, work)
    server = serve(workload, workload_port)
    models = DemoModels.start(work, model_store, console)
    writer = models.writer
    writer.start()
    daemon_port = port or stack.free_port()
    token_file = work / "webhook.token"
    token_file.write_text(secrets.token_urlsafe(24) + "\n")
    token_file.chmod(0o600)
    # The on-call stand-in approves with its own credential: the webhook's token cannot approve.
    approve_file = work / "approvals.token"
    approve_file.write_text(secrets.token_urlsafe(24) + "\n")
    approve_file.chmod(0o600)
    services: list[stack.Service] = []
    daemon: subprocess.Popen[bytes] | None = None
    try:
        am = stack.start_alertmanager(
            work / "alertmanager", token_file=token_file, webhook_url=f"http://127.0.0.1:{daemon_port}/api/v1/alerts"
        )
        services.append(am)
        prom = stack.start_prometheus(
            work / "prometheus",
            interval="2s",
            alertmanager_port=am.port,
            rules=ALERT_RULES,
            scrape=[
                {
                    "job_name": "demo",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{workload_port}"], "labels": {"control_url": control_url}}
                    ],
                }
            ],
        )
        services.append(prom)
        console.print(f"Prometheus   {prom.url}\nAlertmanager {am.url}")
        cfg = {
            "listen": f"127.0.0.1:{daemon_port}",
            "state_url": f"sqlite:///{work / 'state' / 'aiopsd.db'}",
            "state_dir": str(work / "state"),
            "prometheus": {"url": prom.url, "timeout": "5s", "overlap": "10s", "stale_after": "1m"},
            "watches": [
                {
                    "name": "demo_latency",
                    "query": 'demo_api_latency_seconds{job="demo"}',
                    "step": f"{STEP:g}s",
                    "interval": f"{STEP:g}s",
                    "detector": "default",
                    "lookback": "1h",
                }
            ],
            "rules_dir": str(root / "rules"),
            "playbooks_dir": str(root / "playbooks"),
            "playbook_vars": {"diagnostics_dir": str(work / "diagnostics"), "marker_dir": str(work / "remediations")},
            "prediction_logs": [
                {
                    "model": "churn",
                    "path": str(work / "predictions" / "*.jsonl"),
                    **models.log_config,
                    "window": {"rows": 250},
                    "interval": "2s",
                    "task": "classification",
                    # CBPE on the logged score: an accuracy drop is a finding before labels show it.
                    "estimate": {"metric": "accuracy", "max_drop": 0.05},
                }
            ],
            "webhook": {"auth": {"bearer_token_file": str(token_file)}},
            "approvals": {"auth": {"bearer_token_file": str(approve_file)}},
            "alertmanager_url": am.url,
            "actions": {"concurrency": 2, "shutdown_grace": "20s"},
        }
        cfg_path = work / "aiopsd.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        with (work / "aiopsd.log").open("wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "aiopsd", "run", "--config", str(cfg_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        api = f"http://127.0.0.1:{daemon_port}"
        stack.wait_http(f"{api}/-/ready", 60, daemon)
        t0 = time.time()
        workload.latency_incident_at = t0 + LATENCY_INCIDENT_AFTER
        workload.error_burst_at = t0 + ERROR_BURST_AFTER
        writer.drift_at = t0 + DRIFT_AFTER
        console.print(
            f"\n[bold green]aiopsd is running[/]: status page [link]{api}/[/link]  "
            f"(terminal: aiopsd status --url {api}; API {api}/api/v1/overview; log {work / 'aiopsd.log'})"
        )
        console.print(
            f"incidents: latency spike at +{LATENCY_INCIDENT_AFTER:.0f}s (fixed by a restart "
            f"playbook, verified), error burst at +{ERROR_BURST_AFTER:.0f}s (an Alertmanager alert; "
            "a restart does not stop it: not verified, escalated), "
            f"churn model inputs drift from +{DRIFT_AFTER:.0f}s (retrain, once the demo approves it "
            "as the on-call would)\n"
        )
        narrator = Narrator(api, console, t0, token=approve_file.read_text().strip())
        stop = _stop_flag()
        checked = 0.0
        while not stop["set"] and (duration is None or time.time() - t0 < duration):
            if daemon.poll() is not None:
                raise AiopsdError(f"the daemon exited with rc={daemon.returncode}; see {work / 'aiopsd.log'}")
            narrator.poll()
            if until_done and time.time() - checked >= 5.0:
                checked = time.time()
                if story_told(_summary(api, narrator)):
                    console.print("[bold green]the whole story has been told[/]: every incident seen and handled")
                    break
            time.sleep(1.0)
        narrator.poll()
        summary = _summary(api, narrator)
        if summary_json is not None:
            summary_json.write_text(json.dumps(summary, indent=2, default=str))
        console.print(
            f"\n[bold]summary[/]: {summary['alerts_received']} alerts received, "
            f"{len(summary['findings'])} findings, {len(summary['actions'])} actions "
            f"({sum(a['status'] == 'succeeded' for a in summary['actions'])} succeeded)"
        )
        return 0
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
        for svc in reversed(services):
            svc.stop()
        models.stop()
        server.shutdown()


def _stop_flag() -> dict[str, bool]:
    flag = {"set": False}

    def handler(_sig: int, _frame: object) -> None:
        flag["set"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return flag


def story_told(summary: dict[str, Any]) -> bool:
    """Every incident of the demo seen and handled: the alert and the anomaly remediated by their
    playbooks, one remediation verified and one not verified (and escalated), the churn model's
    drift and estimated accuracy drop found, its retrain finished (whatever its gate said) and,
    with a shadow lifecycle, the challenger promoted or rejected."""
    kinds = {f["kind"] for f in summary["findings"]}
    succeeded = {a["action"] for a in summary["actions"] if a["status"] == "succeeded"}
    retrains = [a for a in summary["actions"] if a["kind"] == "retrain"]
    drift = any(f["kind"] == "drift" and f["labels"].get("model") == "churn" for f in summary["findings"])
    estimated = any(f["labels"].get("test") == "estimated_performance" for f in summary["findings"])
    outcomes = {a["verification"] for a in summary["actions"]}
    escalated = any(d["code"] == "on_not_verified" for d in summary["decisions"])
    return (
        summary["alerts_received"] >= 1
        and {"anomaly", "alert"} <= kinds
        and {"restart_service.yml", "collect_diagnostics.yml"} <= succeeded
        and drift
        and estimated
        and {"verified", "not_verified"} <= outcomes
        and escalated
        and bool(retrains)
        and all(a["status"] in ("succeeded", "failed", "timed_out", "canceled", "interrupted") for a in retrains)
        and all(c["state"] != "shadow" for c in summary.get("lifecycle", []))  # a challenger decided
    )


def _summary(api: str, narrator: Narrator) -> dict[str, Any]:
    status = httpx.get(f"{api}/api/v1/status", timeout=10).json()
    findings = httpx.get(f"{api}/api/v1/findings?limit=1000", timeout=10).json()
    runs = httpx.get(f"{api}/api/v1/actions?limit=1000", timeout=10).json()
    decisions = httpx.get(f"{api}/api/v1/decisions?limit=1000", timeout=10).json()
    lifecycle = httpx.get(f"{api}/api/v1/models/lifecycle", timeout=10).json()
    return {
        "lifecycle": lifecycle,
        "status_url": f"{api}/",
        "alerts_received": status["counts"]["alerts"],
        "findings": [
            {
                "kind": f["kind"],
                "source": f["source"],
                "status": f["status"],
                "score": f["score"],
                "summary": f["summary"],
                "labels": f["labels"],
            }
            for f in findings
        ],
        "decisions": [
            {"rule": d["rule"], "outcome": d["outcome"], "code": d["code"], "reason": d["reason"]} for d in decisions
        ],
        "actions": [
            {
                "action": r["action"].get("playbook") or r["kind"],
                "kind": r["kind"],
                "rule": r["rule"],
                "status": r["status"],
                "targets": r["targets"],
                "rc": r["rc"],
                "error": r["error"],
                "result": (r["output"].splitlines() or [""])[0] if r["kind"] != "playbook" else "",
                "verification": (r.get("verification") or {}).get("outcome"),
            }
            for r in runs
        ],
    }
