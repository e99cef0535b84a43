"""Hostile metric labels through a real Prometheus series: watcher -> store -> engine -> shipped rule.

The series is backfilled with promtool (label values escaped as OpenMetrics requires),
read back by the watcher through Prometheus' HTTP API and scored; the anomaly findings go
through the shipped ``restart-on-latency-anomaly`` rule. A host label that is a pattern is
skipped ``unsafe_target``; a literal host acts, and its hostile ``service`` label is data:
the shipped playbook, run for real in check mode, refuses it as a unit name and no canary
appears.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from aiopsd.actions.playbook import run_playbook
from aiopsd.config import PrometheusConfig, WatchConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.demo import stack
from aiopsd.engine import EngineState, evaluate, load_rules
from aiopsd.models import FindingKind, FindingStatus, Outcome
from aiopsd.sources.prometheus.client import PrometheusClient
from aiopsd.sources.prometheus.watch import PrometheusWatch
from aiopsd.store import StateStore
from tests.support import run_poll

REPO = Path(__file__).resolve().parents[2]


def om_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def test_hostile_metric_labels_are_data_or_unsafe_target(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    hostile_service = f"api{{{{ lookup('pipe', 'touch {canary}') }}}}; touch {canary}"
    series = {  # host label -> service label
        "web[01:50].prod": "api",
        "all": "api",
        "localhost,evil": "api",
        "web*": "api",
        f"{{{{ lookup('pipe','touch {canary}') }}}}": "api",
        "local\nhost": "api",
        "localhost": hostile_service,
    }
    now = time.time()
    start = now - 1800
    samples = []
    for n, (host, service) in enumerate(series.items()):
        for i in range(1800):
            value = 5.0 + ((i + n) % 7) * 0.1 + (40.0 if 1500 <= i < 1510 else 0.0)
            samples.append(("app_latency", {"host": om_escape(host), "service": om_escape(service)}, value, start + i))
    stack.backfill(tmp_path / "data", stack.to_openmetrics(samples, {"app_latency": "gauge"}), tmp_path)
    prom = stack.start_prometheus(tmp_path, scrape=[], tsdb_dir=tmp_path / "data")
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        cfg = PrometheusConfig(url=prom.url, timeout=10, overlap=30)
        watch = WatchConfig(name="lat", query="app_latency", step=1, interval=1, lookback=1800, detector="mad")
        store.put_cursor("prometheus:lat", {"watermark": start + 1400})
        found = run_poll(PrometheusWatch(watch, cfg, PrometheusClient(cfg), store, Metrics()), now)
    finally:
        prom.stop()
    latest = {f.id: f for f in found if f.kind == FindingKind.ANOMALY and f.status == FindingStatus.FIRING}
    firing = list(latest.values())
    # Prometheus handed the label values back byte for byte.
    assert {f.labels["host"] for f in firing} == set(series)
    rules = [r for r in load_rules(REPO / "rules", REPO / "playbooks") if r.name == "restart-on-latency-anomaly"]
    decisions = []
    for seen in firing:
        # Evaluated as the daemon would right after the spike: two sightings within the rule's 1m.
        at = seen.last_seen + timedelta(seconds=1)
        f = seen.model_copy(update={"sightings": (at.timestamp() - 2, at.timestamp() - 1)})
        decisions += [(f, d) for d in evaluate([f], rules, EngineState(), at)]
    # "local\nhost" does not even match: the rule's `host: "~.+"` does not cross a newline.
    assert sorted(f.labels["host"] for f, _ in decisions) == sorted(h for h in series if h != "local\nhost")
    for f, d in decisions:
        if f.labels["host"] == "localhost":
            assert d.outcome == Outcome.ACT and d.targets == ("localhost",)
            assert d.action["extra_vars"]["service"] == hostile_service
            res = run_playbook(
                playbooks_dir=REPO / "playbooks",
                playbook=d.action["playbook"],
                targets=d.targets,
                extra_vars=d.action["extra_vars"],
                check=True,
                timeout=120,
                private_dir=tmp_path / "run",
            )
            assert "not a plain unit name" in res.output, res.output
        else:
            assert (d.outcome, d.code) == (Outcome.SKIP, "unsafe_target"), (f.labels, d)
    assert not canary.exists()
    store.close()
