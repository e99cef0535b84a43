"""The status page's pieces: the SVG chart, escaping, the report route's jail, the verdict at the top."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from aiopsd.daemon.http.api import create_app
from aiopsd.daemon.http.auth import Credentials
from aiopsd.daemon.http.ui.chart import NARROW, WIDE, Mark, Point, render_chart
from aiopsd.daemon.runtime import Runtime
from aiopsd.engine.history import engine_state
from aiopsd.models import Finding, FindingKind
from tests.support import make_runtime

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def points(n: int = 60, spike_at: int = 50) -> list[Point]:
    out = []
    for i in range(n):
        v = 10.0 + (i % 3) * 0.1 + (30.0 if i >= spike_at else 0.0)
        out.append(
            Point(
                ts=1_700_000_000 + 10 * i,
                value=v,
                score=3.0 if i >= spike_at else 0.2,
                yhat=10.1,
                lower=9.5,
                upper=10.7,
            )
        )
    return out


def test_chart_marks_exactly_the_anomalous_points_and_draws_the_band() -> None:
    svg = render_chart(points(), title="latency", marks=[Mark(1_700_000_000 + 555, "#1 restart", True)])
    assert len(re.findall(r'<circle class="anomalous"', svg)) == 10
    assert svg.count('<polygon class="band"') == 1
    assert 'class="value"' in svg and 'class="yhat"' in svg
    ticks = re.findall(r'<text class="xtick"[^>]*>([^<]+)</text>', svg)
    assert len(ticks) >= 3 and all(re.fullmatch(r"\d\d:\d\d(:\d\d)?", t) for t in ticks)
    assert "#1 restart" in svg


def test_chart_without_band_or_points_says_so() -> None:
    no_band = [Point(p.ts, p.value, p.score, None, None, None) for p in points()]
    svg = render_chart(no_band, title="x", size=NARROW)
    assert "<polygon" not in svg and 'class="chart narrow"' in svg
    assert "Not enough points" in render_chart(points()[:1], title="x")


def test_chart_escapes_its_texts() -> None:
    svg = render_chart(points(), title='<script>alert("t")</script>', marks=[Mark(1_700_000_100, "<b>", False)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;" in svg


def add_finding(rt: Runtime, **kw: Any) -> Finding:
    f = Finding(
        **{
            "id": "f1",
            "kind": FindingKind.ALERT,
            "source": "alertmanager",
            "starts_at": NOW,
            "last_seen": datetime.now(UTC),
            **kw,
        }
    )
    rt.store.upsert_findings([f])
    return f


def test_page_escapes_what_came_from_outside(runtime: Runtime) -> None:
    rt = runtime
    add_finding(rt, summary="<script>alert(1)</script>", labels={"alertname": "<img src=x onerror=1>"})
    html = TestClient(create_app(rt, Credentials(None, None, None))).get("/").text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "<script" not in html, "the page needs no scripts at all"


def test_report_route_serves_only_files_under_the_state_dir(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path)
    inside = rt.settings.state_dir / "reports" / "r.html"
    inside.parent.mkdir(parents=True)
    inside.write_text("<h1>report</h1>")
    outside = tmp_path / "secret.html"
    outside.write_text("secret")
    add_finding(
        rt,
        id="ok",
        kind=FindingKind.DRIFT,
        source="churn",
        details={"report_html": "reports/r.html", "report_json": str(tmp_path / "state" / ".." / "secret.html")},
    )
    add_finding(rt, id="bad", kind=FindingKind.DRIFT, source="churn", details={"report_html": str(outside)})
    client = TestClient(create_app(rt, Credentials(None, None, None)))
    r = client.get("/findings/ok/report.html")
    assert r.status_code == 200 and "report" in r.text and r.headers["content-type"].startswith("text/html")
    assert client.get("/findings/ok/report.json").status_code == 404, "'..' out of the state dir is refused"
    assert client.get("/findings/bad/report.html").status_code == 404
    assert client.get("/findings/ok/report.exe").status_code == 404
    page = client.get("/").text
    assert "/findings/ok/report.html" in page and "/findings/bad/report.html" not in page


def test_verdict_names_a_down_source_and_a_waiting_approval(runtime: Runtime) -> None:
    rt = runtime
    client = TestClient(create_app(rt, Credentials(None, None, None)))
    assert client.get("/api/v1/overview").json()["state"] == "ok"
    rt.store.set_source("api", "prometheus", up=False, now=datetime.now(UTC), error="connection refused")
    body = client.get("/api/v1/overview").json()
    assert body["state"] == "bad"
    assert body["headline"][0]["text"].startswith("source api is down: connection refused")
    assert body["sources"][0]["state"] == "down"
    page = client.get("/").text
    assert "Problem" in page and "source api is down" in page


def test_model_versions_show_their_metrics_and_the_current_one(runtime: Runtime) -> None:
    rt = runtime
    reg = rt.settings.state_dir / "models" / "churn"
    for n, f1 in ((1, 0.7), (2, 0.75), (10, 0.74)):
        (reg / "versions" / str(n)).mkdir(parents=True)
        (reg / "versions" / str(n) / "metrics.json").write_text(json.dumps({"f1": f1, "eval": {"rows": 100}}))
    (reg / "current").write_text("versions/2\n")
    [model] = TestClient(create_app(rt, Credentials(None, None, None))).get("/api/v1/models").json()
    assert model["current"] == "2"
    assert [v["version"] for v in model["versions"]] == ["10", "2", "1"]
    assert model["versions"][1] | {"created_at": None} == {
        "version": "2",
        "current": True,
        "created_at": None,
        "metrics": {"f1": 0.75, "eval.rows": 100},
    }


def test_rules_show_cooldown_and_time_left(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n- name: r1\n  match: {kind: alert}\n  action: {notify: {message: hi}}\n  guards: {cooldown: 1h}\n"
    )
    rt = make_runtime(tmp_path)
    f = add_finding(rt)
    from aiopsd.engine import evaluate

    state = engine_state(rt.store, rt.rules, datetime.now(UTC), sources_down={})
    rt.store.record_decisions(evaluate([f], rt.rules, state, datetime.now(UTC)), rt.rules_by_name())
    [rule] = TestClient(create_app(rt, Credentials(None, None, None))).get("/api/v1/rules").json()
    assert rule["cooldown_seconds"] == 3600 and rule["circuit"] == {"open": False, "reason": ""}
    until = datetime.fromisoformat(rule["cooling_down_until"])
    assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(hours=1)


def test_prediction_log_sources_show_their_offsets(runtime: Runtime) -> None:
    rt = runtime
    rt.store.set_source("churn", "predictions", up=True, now=datetime.now(UTC), lag=3.0)
    rt.store.put_cursor("predictions:churn:/var/log/churn/a.jsonl", {"inode": 42, "offset": 1234})
    client = TestClient(create_app(rt, Credentials(None, None, None)))
    [src] = client.get("/api/v1/sources").json()
    assert src["kind"] == "predictions" and src["state"] == "up"
    assert src["cursor"] == {"/var/log/churn/a.jsonl": {"inode": 42, "offset": 1234}}
    assert "/var/log/churn/a.jsonl: inode=42, offset=1234" in client.get("/").text


def test_time_axis_always_has_readable_ticks() -> None:
    for span in (40, 95, 300, 800, 1234, 3600, 5000, 20000, 90000, 200000):
        for offset in (0, 17, 133, 599):
            start = 1_700_000_000 + offset
            pts = [Point(start + span * i / 50, 1.0 + i % 2, 0.0, 1.0, 0.5, 1.5) for i in range(51)]
            for size, least in ((WIDE, 3), (NARROW, 2)):
                svg = render_chart(pts, title="x", size=size)
                ticks = re.findall(r'<text class="xtick"[^>]*>([^<]+)</text>', svg)
                assert least <= len(ticks) <= size.xticks + 2, (span, offset, size, ticks)


def test_an_unsafe_target_skip_is_shown_with_its_reason(runtime: Runtime) -> None:
    from aiopsd.engine import Rule, evaluate
    from aiopsd.engine.evaluate import EngineState

    rt = runtime
    rule = Rule.model_validate(
        {
            "name": "diag",
            "match": {"kind": "alert"},
            "action": {"playbook": "collect_diagnostics.yml", "targets": "{{ labels.host }}"},
        }
    )
    f = add_finding(rt, labels={"alertname": "Disk", "host": "web[01:50].prod"})
    decisions = evaluate([f], [rule], EngineState(), datetime.now(UTC))
    rt.store.record_decisions(decisions, {"diag": rule})
    page = TestClient(create_app(rt, Credentials(None, None, None))).get("/").text
    assert "unsafe target" in page and "web[01:50].prod" in page


def test_drift_finding_explains_which_values_gained_share(runtime: Runtime) -> None:
    import numpy as np
    import pandas as pd

    from aiopsd.detectors.drift import profile_reference, test_window
    from aiopsd.sources.predictions.watch import explanation

    rng = np.random.default_rng(0)
    hostile = "<b>bot</b>"
    ref = pd.DataFrame({"country": rng.choice(["de", "fr", hostile], 2000, p=[0.7, 0.295, 0.005])})
    win = pd.DataFrame({"country": rng.choice(["de", "fr", hostile], 100, p=[0.5, 0.25, 0.25])})
    result = test_window(profile_reference(ref), win)
    assert result.drift
    rt = runtime
    add_finding(
        rt, id="d1", kind=FindingKind.DRIFT, source="predictions:churn", details={"explanation": explanation(result)}
    )
    html = TestClient(create_app(rt, Credentials(None, None, None))).get("/findings/d1").text
    assert "drifted columns by effect size" in html and "<strong>country</strong>" in html
    assert "&lt;b&gt;bot&lt;/b&gt; 0." in html and "<b>bot</b>" not in html
