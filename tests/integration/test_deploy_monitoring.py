"""deploy/: the Prometheus alerting rules and the Grafana dashboard for aiopsd itself.

The rules pass promtool's check and its unit tests (each alert fires on the
situation it names and not before); every dashboard query parses in a real
Prometheus; every aiopsd metric that a query or a rule names is one the daemon
really exports on /metrics.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi.testclient import TestClient

from aiopsd.daemon.http.api import create_app
from aiopsd.daemon.http.auth import Credentials
from aiopsd.demo import stack
from tests.support import REPO, make_runtime

RULES = REPO / "deploy" / "prometheus" / "aiopsd-rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "aiopsd-rules.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "aiopsd.json"
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$instance": ".*", "$watch": ".*"}


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                out.append(node["expr"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(dash["panels"])
    for var in dash["templating"]["list"]:
        m = re.fullmatch(r"label_values\((.+), *\w+\)", var.get("definition", ""))
        if m:
            out.append(m.group(1))
    return out


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def rule_exprs() -> list[str]:
    return [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def exported_names(tmp_path: Path) -> set[str]:
    """Series names the daemon's /metrics exposes (with the _total/_bucket/... suffixes of each type)."""
    rt = make_runtime(tmp_path)
    rt.metrics.scores.set("latency", {"host": "a"}, (0.5, 1.0, 0.8, 1.2))
    text = TestClient(create_app(rt, Credentials(None, None, None))).get("/metrics").text
    names: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\w+)", line)
        if not m:
            continue
        name, kind = m.groups()
        name = name.removesuffix("_total") if kind == "counter" else name
        suffixes = {
            "counter": ["_total", "_created"],
            "histogram": ["_bucket", "_sum", "_count", "_created"],
            "summary": ["_sum", "_count", "_created"],
        }.get(kind, [""])
        names |= {name + s for s in suffixes}
    return names


def test_alerting_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = stack.binary("promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 8 rules found" in check.stdout
    unit = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True, text=True, check=False
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert {"AiopsdDown", "AiopsdSchedulerStuck", "AiopsdCircuitOpen", "AiopsdActionsFailing"} <= alerts


def test_every_dashboard_query_parses_in_prometheus(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    prom = stack.start_prometheus(tmp_path / "prom", scrape=[])
    with stack.stopping(prom):
        for q in queries:
            r = httpx.get(f"{prom.url}/api/v1/query", params={"query": grafana_to_promql(q)}, timeout=10)
            assert r.status_code == 200 and r.json()["status"] == "success", f"{q}: {r.text}"
        bad = httpx.get(f"{prom.url}/api/v1/query", params={"query": "sum by (le (x"}, timeout=10)
        assert bad.status_code == 400, "a broken query is refused, so the loop above checks something"


def test_dashboard_and_rules_name_only_metrics_the_daemon_exports(tmp_path: Path) -> None:
    exported = exported_names(tmp_path)
    named = {n for q in dashboard_queries() + rule_exprs() for n in re.findall(r"\baiopsd_[a-z_]+\b(?!\s*=)", q)}
    assert named, "the queries name aiopsd metrics"
    missing = sorted(named - exported)
    assert not missing, f"not exported by the daemon: {missing}"
    for required in (
        "aiopsd_anomaly_score",
        "aiopsd_anomaly_yhat_lower",
        "aiopsd_anomaly_yhat_upper",
        "aiopsd_scheduler_last_tick_timestamp_seconds",
        "aiopsd_rule_circuit_open",
        "aiopsd_action_duration_seconds_bucket",
        "aiopsd_store_operation_seconds_bucket",
    ):
        assert required in named, f"{required} is on the dashboard or in a rule"
