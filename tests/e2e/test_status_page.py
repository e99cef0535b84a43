"""The on-call view in a real headless Chromium (scripts off) against a real daemon process.

The daemon's store holds what a bad night leaves behind, made by the real code
paths: anomaly findings from the real watcher and detector (a scripted range
source stands in for Prometheus, whose own path is tested elsewhere), alerts
delivered to the real webhook, decisions from the real engine (acts and every
kind of refusal), playbooks run for real by ansible-runner (one succeeds, one
fails and opens its rule's circuit), a Prometheus watch that cannot be reached,
and a drift finding with its report and a model registry on disk. Screenshots
land in test-artifacts/ at 1366x768 and at phone width.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from aiopsd.config import PrometheusConfig, WatchConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.demo.stack import binary, free_port
from aiopsd.models import Finding, FindingKind
from aiopsd.sources.prometheus.watch import PrometheusWatch
from aiopsd.store import StateStore
from aiopsd.testing import ScriptedRange
from tests.support import (
    REPO,
    DaemonProcess,
    payload,
    run_poll,
    start_daemon,
    tool_env,
    wait_for,
    write_config,
)
from tests.support import alert as make_alert

ARTIFACTS = REPO / "test-artifacts"
DESKTOP = (1366, 768)
PHONE = (390, 844)


def seed_store(state_dir: Path, db: str, now: float) -> None:
    """Anomaly findings through the real watcher, a drift finding with a report, a model registry."""
    store = StateStore(db)
    ts = np.arange(now - 900, now + 1, 5.0)
    rng = np.random.default_rng(7)
    data: dict[tuple[tuple[str, str], ...], tuple[np.ndarray, np.ndarray]] = {}
    for inst in ("web-a", "web-b"):
        vs = 0.12 + rng.normal(0, 0.01, ts.size)
        vs[-6:] = 0.55 + rng.normal(0, 0.02, 6)
        data[(("host", "localhost"), ("instance", inst), ("service", "checkout"))] = (ts, vs)
    src = ScriptedRange({k: (v[0][:-40], v[1][:-40]) for k, v in data.items()})
    watcher = PrometheusWatch(
        WatchConfig(
            name="checkout_latency", query="checkout_latency_seconds", step=5, interval=5, lookback=3600, detector="mad"
        ),
        PrometheusConfig(url="http://unused", overlap=10),
        src,
        store,
        Metrics(),
    )
    run_poll(watcher, float(ts[-41]))
    src.data = data
    run_poll(watcher, now)
    reports = state_dir / "reports"
    reports.mkdir(parents=True)
    (reports / "churn-1.html").write_text("<html><body><h1>Evidently drift report: churn</h1></body></html>")
    (reports / "churn-1.json").write_text(json.dumps({"metrics": []}))
    store.upsert_findings(
        [
            Finding(
                id="drift-churn-1",
                kind=FindingKind.DRIFT,
                source="churn",
                labels={"model": "churn"},
                score=2.5,
                starts_at=_dt(now - 300),
                last_seen=_dt(now - 60),
                summary="churn: 2 of 3 columns drifted",
                details={
                    "columns": {
                        "tenure": {"test": "ks", "statistic": 0.41, "p_value": 1e-9, "psi": 0.62, "drift": True},
                        "plan": {"test": "chi2", "statistic": 37.2, "p_value": 2e-6, "psi": 0.31, "drift": True},
                        "age": {"test": "ks", "statistic": 0.03, "p_value": 0.71, "psi": 0.01, "drift": False},
                    },
                    "report_html": str(reports / "churn-1.html"),
                    "report_json": "reports/churn-1.json",
                },
                sightings=(now - 60,),
            )
        ]
    )
    for n, auc in ((1, 0.81), (2, 0.84)):
        vdir = state_dir / "models" / "churn" / "versions" / str(n)
        vdir.mkdir(parents=True)
        (vdir / "metrics.json").write_text(json.dumps({"roc_auc": auc, "rows": 5000 * n}))
    (state_dir / "models" / "churn" / "current").symlink_to(state_dir / "models" / "churn" / "versions" / "2")
    store.close()


def _dt(x: float) -> datetime:
    return datetime.fromtimestamp(x, UTC)


RULES: dict[str, Any] = {
    "rules": [
        {
            "name": "restart-on-latency-anomaly",
            "description": "Restart the service behind anomalous latency.",
            "match": {"kind": "anomaly", "labels": {"service": "checkout"}},
            "for": {"count": 2, "window": "10m"},
            "action": {
                "playbook": "restart_service.yml",
                "targets": "{{ labels.host }}",
                "extra_vars": {"restart_command": "true", "incident": "{{ finding.id }}"},
            },
            "guards": {"cooldown": "10m", "timeout": "2m"},
        },
        {
            "name": "diagnose-disk",
            "match": {"kind": "alert", "labels": {"alertname": "DiskFilling"}},
            "action": {
                "playbook": "collect_diagnostics.yml",
                "targets": "localhost",
                "extra_vars": {"incident": "disk-{{ finding.id }}"},
            },
            "guards": {"timeout": "2m"},
        },
        {
            "name": "restart-queue",
            "match": {"kind": "alert", "labels": {"alertname": "QueueStuck"}},
            "action": {
                "playbook": "restart_service.yml",
                "targets": "localhost",
                "extra_vars": {"restart_url": "{{ labels.control_url }}"},
            },
            "guards": {"timeout": "1m", "circuit_breaker": {"failures": 1, "reset_after": "1h"}},
        },
        {
            "name": "page-a-human",
            "match": {"kind": "alert", "labels": {"alertname": "ModelDegraded"}},
            "action": {"notify": {"message": "model degraded on {{ labels.host }}"}},
            "guards": {"require_approval": True},
        },
        {
            "name": "warm-cache",
            "match": {"kind": "alert", "labels": {"alertname": "CacheCold"}},
            "action": {"notify": {"message": "would warm the cache"}},
            "guards": {"dry_run": True},
        },
        {
            "name": "flush-cache",
            "match": {"kind": "alert", "labels": {"alertname": "CacheFull"}},
            "action": {"log": {"message": "flushing the cache on {{ labels.host }}"}},
            "verify": {"within": "3s", "check": "resolved"},
            "on_not_verified": {"notify": {"message": "the flush did not help {{ labels.host }}"}},
            "min_success": {"of_last": 1, "verified": 1},
        },
        {
            "name": "rotate-logs",
            "match": {"kind": "alert", "labels": {"alertname": "LogsFull"}},
            "action": {"log": {"message": "rotating logs on {{ labels.host }}"}},
            "verify": {"within": "2m", "check": "resolved"},
        },
        {
            "name": "reboot-node",
            "match": {"kind": "alert", "labels": {"alertname": "NodeDown"}},
            "action": {"notify": {"message": "reboot {{ labels.host }}"}},
            "guards": {"max_per_window": {"count": 1, "window": "1h"}},
        },
    ]
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    work = tmp_path_factory.mktemp("oncall")
    (work / "rules").mkdir()
    (work / "rules" / "oncall.yaml").write_text(yaml.safe_dump(RULES, sort_keys=False))
    cfg = write_config(
        work,
        prometheus={"url": f"http://127.0.0.1:{free_port()}", "timeout": "1s"},
        watches=[{"name": "api_errors", "query": "sum(rate(http_errors_total[1m]))", "step": "5s", "interval": "2s"}],
        playbook_vars={"diagnostics_dir": str(work / "diag")},
    )
    settings = yaml.safe_load(cfg.read_text())
    seed_store(work / "state", settings["state_url"], time.time())
    d = start_daemon(cfg)
    try:
        closed = f"http://127.0.0.1:{free_port()}/restart"

        began = _dt(time.time() - 120).strftime("%Y-%m-%dT%H:%M:%SZ")

        def alert(name: str, **kw: str) -> dict[str, Any]:
            return make_alert(name, starts_at=kw.pop("starts_at", began), **kw)

        def post(*alerts: dict[str, Any]) -> None:
            r = httpx.post(f"{d.url}/api/v1/alerts", json=payload(*alerts), timeout=10)
            assert r.status_code == 200, r.text

        post(
            alert("DiskFilling", fingerprint="disk", severity="warning", host="localhost"),
            alert("QueueStuck", fingerprint="q1", control_url=closed),
            alert("ModelDegraded", fingerprint="m1", host="ml-1"),
            alert("CacheCold", fingerprint="c1"),
            alert("NodeDown", fingerprint="n1", host="node-1"),
            alert("NodeDown", fingerprint="n2", host="node-2"),
            alert("CacheFull", fingerprint="cf1", host="cache-1"),
            alert("LogsFull", fingerprint="lf1", host="log-1"),
        )

        def run_of(rule: str) -> dict[str, Any] | None:
            runs = [r for r in d.get("/api/v1/actions") if r["rule"] == rule]
            return runs[0] if runs and runs[0]["status"] not in ("pending", "running") else None

        wait_for(lambda: run_of("restart-queue"), 120, what="the failing playbook to finish")
        wait_for(lambda: run_of("rotate-logs"), 60, what="the log rotation to finish")
        post(alert("LogsFull", fingerprint="lf1", host="log-1", status="resolved"))  # it worked: verified
        post(
            alert(
                "QueueStuck",
                fingerprint="q2",
                starts_at=_dt(time.time() - 30).strftime("%Y-%m-%dT%H:%M:%SZ"),
                control_url=closed,
            )
        )

        def settled() -> bool:
            codes = {x["code"] for x in d.get("/api/v1/decisions?limit=200")}
            runs = d.get("/api/v1/actions")
            outcomes = {r["rule"]: (r["verification"] or {}).get("outcome") for r in runs if r["kind"] == "log"}
            return (
                {"cooldown", "circuit_open", "rate_budget", "on_not_verified"} <= codes
                and outcomes == {"flush-cache": "not_verified", "rotate-logs": "verified"}
                and all(r["status"] not in ("pending", "running") for r in runs)
                and {r["rule"] for r in runs} >= {"restart-on-latency-anomaly", "diagnose-disk"}
            )

        wait_for(settled, 120, what="decisions and runs to settle")
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary("chromium")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ):
        opts.add_argument(flag)
    # Scripts off: the page must work without JavaScript.
    opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(options=opts, service=Service(binary("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def viewport(driver: WebDriver, size: tuple[int, int]) -> None:
    w, h = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": w < 600}
    )


def screenshot(driver: WebDriver, name: str, *, full: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    params: dict[str, Any] = {"format": "png"}
    if full:
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        params.update(
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
    data = driver.execute_cdp_cmd("Page.captureScreenshot", params)["data"]
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(data))
    return path


def page_width(driver: WebDriver) -> tuple[float, float]:
    m = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    return m["cssContentSize"]["width"], m["cssLayoutViewport"]["clientWidth"]


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def test_status_page_says_what_it_saw_did_and_refused(daemon: DaemonProcess, browser: WebDriver) -> None:
    viewport(browser, DESKTOP)
    browser.get(f"{daemon.url}/")
    assert "<script" not in browser.page_source
    state = text_of(browser, "#state")
    assert state.startswith("Problem")
    assert "source api_errors is down" in state
    assert "rule restart-queue: circuit open" in state
    assert "action(s) failed in the last hour: #" in state
    assert "finding(s) firing" in state
    screenshot(browser, "status-1366x768")
    screenshot(browser, "status-1366-full", full=True)

    # What it saw: the latency anomaly with its chart, band and marked points.
    card = browser.find_element(
        By.XPATH,
        "//article[contains(@class,'firing')][.//span[text()='anomaly']][.//a[contains(., 'restart_service.yml')]]",
    )
    assert "checkout_latency" in card.text and "anomaly" in card.text
    chart = card.find_element(By.CSS_SELECTOR, "svg.chart.wide")
    assert chart.is_displayed() and not card.find_element(By.CSS_SELECTOR, "svg.chart.narrow").is_displayed()
    assert chart.find_elements(By.CSS_SELECTOR, "polygon.band"), "the expected band is drawn"
    assert chart.find_elements(By.CSS_SELECTOR, "polyline.value")
    marked = chart.find_elements(By.CSS_SELECTOR, "circle.anomalous")
    assert 1 <= len(marked) <= 10, "the spike's points are marked, the normal ones are not"
    ticks = [t.text for t in chart.find_elements(By.CSS_SELECTOR, "text.xtick")]
    assert len(ticks) >= 3 and all(":" in t for t in ticks), ticks
    assert chart.find_elements(By.CSS_SELECTOR, "g.mark.ok"), "the restart is marked on the chart"
    assert chart.size["width"] > 500 and chart.size["height"] > 180

    # Drift: drifted columns first, and the report opens.
    drift = browser.find_element(By.XPATH, "//article[contains(@class,'finding')][.//span[text()='drift']]")
    rows = [r.text for r in drift.find_elements(By.CSS_SELECTOR, "table.cols tbody tr")]
    assert rows[0].startswith("plan") and "DRIFTED" in rows[0] and "DRIFTED" in rows[1] and "ok" in rows[2]

    # What it did: each action with status, target, duration and the decision's reason.
    actions = text_of(browser, "table.actions")
    assert "restart_service.yml" in actions and "collect_diagnostics.yml" in actions
    assert "succeeded" in actions and "failed" in actions
    assert "matched anomaly checkout_latency" in actions

    # What it refused, and why: each kind of refusal by name.
    held = text_of(browser, "table.held")
    for label in ("cooldown", "circuit open", "rate budget spent", "awaiting approval", "dry run"):
        assert label in held, label
    assert "/approve" in held

    # Sources and rules.
    sources = text_of(browser, "table.sources")
    assert "api_errors" in sources and "down" in sources and "checkout_latency" in sources
    rules = browser.find_element(By.XPATH, "//table[contains(@class,'rules')]//tr[.//b[text()='restart-queue']]")
    assert "open" in rules.text and "1 consecutive failed runs" in rules.text
    anomaly_rule = browser.find_element(
        By.XPATH, "//table[contains(@class,'rules')]//tr[.//b[text()='restart-on-latency-anomaly']]"
    )
    assert "cooling down until" in anomaly_rule.text

    # Closed loop: one remediation verified, one not verified (escalated), and its rule demoted.
    assert "verified" in actions and "not verified" in actions
    assert "the flush did not help cache-1" in actions or "notify" in actions
    flush = browser.find_element(By.XPATH, "//table[contains(@class,'rules')]//tr[.//b[text()='flush-cache']]")
    assert "demoted: needs approval" in flush.text and "0 of 1 verified" in flush.text
    rotate = browser.find_element(By.XPATH, "//table[contains(@class,'rules')]//tr[.//b[text()='rotate-logs']]")
    assert "1 of 1 verified" in rotate.text
    flush.location_once_scrolled_into_view  # noqa: B018
    screenshot(browser, "status-closed-loop-1366x768")

    # Models: versions with their metrics, the current one flagged.
    models = text_of(browser, "#models")
    assert "churn" in models and "current version 2" in models and "roc_auc 0.84" in models


def test_action_link_opens_the_playbook_output(daemon: DaemonProcess, browser: WebDriver) -> None:
    viewport(browser, DESKTOP)
    browser.get(f"{daemon.url}/")
    link = browser.find_element(
        By.XPATH,
        "//table[contains(@class,'actions')]//a[contains(., 'restart_service.yml')]"
        "[ancestor::tr[contains(., 'succeeded')]]",
    )
    link.click()
    assert "/actions/" in browser.current_url
    body = text_of(browser, "main")
    assert "succeeded" in body and "localhost" in body and "matched anomaly checkout_latency" in body
    assert "PLAY RECAP" in text_of(browser, "pre.output")
    screenshot(browser, "action-1366x768")
    browser.back()
    failed = browser.find_element(By.XPATH, "//table[contains(@class,'actions')]//tr[contains(., 'failed')]//a")
    failed.click()
    assert "failed" in text_of(browser, "h1")
    assert "PLAY RECAP" in text_of(browser, "pre.output") or text_of(browser, "dd.err")
    screenshot(browser, "action-failed-1366x768", full=True)


def test_drift_report_link_serves_the_report(daemon: DaemonProcess, browser: WebDriver) -> None:
    viewport(browser, DESKTOP)
    browser.get(f"{daemon.url}/")
    browser.find_element(By.LINK_TEXT, "Evidently report (HTML)").click()
    assert "Evidently drift report: churn" in text_of(browser, "h1")


def test_phone_width_has_no_sideways_scrolling(daemon: DaemonProcess, browser: WebDriver) -> None:
    viewport(browser, PHONE)
    browser.get(f"{daemon.url}/")
    content, visible = page_width(browser)
    assert content <= visible + 1, f"page is {content}px wide on a {visible}px screen"
    assert text_of(browser, "#state h1") == "Problem"
    chart = browser.find_element(By.CSS_SELECTOR, "svg.chart.narrow")
    assert chart.is_displayed() and chart.size["width"] <= PHONE[0]
    assert chart.find_elements(By.CSS_SELECTOR, "circle.anomalous")
    assert chart.find_elements(By.CSS_SELECTOR, "polygon.band")
    screenshot(browser, "status-390x844")
    screenshot(browser, "status-390-full", full=True)
    browser.get(f"{daemon.url}/actions/1")
    content, visible = page_width(browser)
    assert content <= visible + 1, "the playbook output wraps instead of widening the page"
    screenshot(browser, "action-390x844")


def test_auto_refresh_is_opt_in(daemon: DaemonProcess, browser: WebDriver) -> None:
    browser.get(f"{daemon.url}/")
    assert not browser.find_elements(By.CSS_SELECTOR, "meta[http-equiv='refresh']")
    browser.find_element(By.PARTIAL_LINK_TEXT, "auto-refresh").click()
    meta = browser.find_element(By.CSS_SELECTOR, "meta[http-equiv='refresh']")
    assert meta.get_attribute("content") == "30"


def test_status_command_prints_the_same_story(daemon: DaemonProcess) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "aiopsd", "status", "--url", daemon.url],
        env={**tool_env(), "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "PROBLEM" in out and "source api_errors is down" in out
    assert "restart_service.yml" in out and "collect_diagnostics.yml" in out and "failed" in out
    for label in ("cooldown", "circuit open", "rate budget spent", "awaiting approval", "dry run"):
        assert label in out, label
    assert "open: 1 consecutive failed runs" in out
    assert "not_verified" in out and "DEMOTED, needs approval" in out
    down = subprocess.run(
        [sys.executable, "-m", "aiopsd", "status", "--url", f"http://127.0.0.1:{free_port()}"],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 1 and "is the daemon running" in down.stderr


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        sname, _, rest = series.partition("{")
        if sname == name and ",".join(sorted(rest.rstrip("}").split(","))) == want:
            return float(value)
    raise AssertionError(f"{name}{{{want}}} not in /metrics")


def test_metrics_count_what_happened(daemon: DaemonProcess) -> None:
    gone = payload(make_alert("Gone", fingerprint="gone", status="resolved"), status="resolved")
    answers = [httpx.post(f"{daemon.url}/api/v1/alerts", json=gone, timeout=10).json() for _ in range(2)]
    assert answers == [{"accepted": 1, "duplicates": 0}, {"accepted": 0, "duplicates": 1}]
    bad = httpx.post(f"{daemon.url}/api/v1/alerts", content=b"{not json", timeout=10)
    assert bad.status_code == 400
    text = httpx.get(f"{daemon.url}/metrics", timeout=10).text
    assert metric(text, "aiopsd_alerts_received_total", result="accepted") >= 9
    assert metric(text, "aiopsd_alerts_received_total", result="rejected") == 1
    assert metric(text, "aiopsd_alerts_received_total", result="duplicate") == 1
    assert metric(text, "aiopsd_findings_total", kind="alert") == 9
    assert metric(text, "aiopsd_decisions_total", outcome="skip", code="circuit_open") == 1
    assert metric(text, "aiopsd_decisions_total", outcome="skip", code="rate_budget") == 1
    assert metric(text, "aiopsd_action_runs_total", kind="playbook", status="failed") == 1
    assert metric(text, "aiopsd_action_runs_total", kind="playbook", status="succeeded") == 2
    assert metric(text, "aiopsd_action_duration_seconds_count", kind="playbook") == 3
    assert metric(text, "aiopsd_source_up", source="api_errors") == 0
    assert metric(text, "aiopsd_store_operation_seconds_count", op="write") > 0
    assert metric(text, "aiopsd_store_operation_seconds_count", op="read") > 0
    assert metric(text, "aiopsd_scheduler_last_tick_timestamp_seconds") > 0
    assert metric(text, "aiopsd_scheduler_lag_seconds", job="dispatch") >= 0
    assert metric(text, "aiopsd_rule_circuit_open", rule="restart-queue") == 1
    assert metric(text, "aiopsd_rule_circuit_open", rule="diagnose-disk") == 0
    assert metric(text, "aiopsd_findings_firing", kind="anomaly") == 2
    assert metric(text, "aiopsd_action_runs_open", status="awaiting_approval") == 1
    assert metric(text, "aiopsd_store_up") == 1
    assert metric(text, "aiopsd_remediation_outcomes_total", rule="flush-cache", outcome="not_verified") == 1
    assert metric(text, "aiopsd_remediation_outcomes_total", rule="rotate-logs", outcome="verified") == 1
