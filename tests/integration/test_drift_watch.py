"""Prediction log -> drift finding with an Evidently report -> gated retrain, on real files and models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from aiopsd.actions.executors import context_for, execute
from aiopsd.config import PredictionLogConfig, Settings
from aiopsd.daemon.metrics import Metrics
from aiopsd.demo.model_workload import FEATURES, make_rows, set_up_model
from aiopsd.engine.evaluate import render_targets, template_context
from aiopsd.engine.rules import Rule
from aiopsd.engine.templating import render
from aiopsd.model_store.directory import DirectoryStore
from aiopsd.models import ActionRun, FindingStatus, RunStatus
from aiopsd.sources.predictions.watch import DriftWatch
from aiopsd.store import StateStore
from tests.support import run_poll


def log_rows(path: Path, n: int, drift: float, seed: int, model: object, t0: float) -> None:
    df = make_rows(n, np.random.default_rng(seed), drift)
    preds = model.predict(df[FEATURES])  # type: ignore[attr-defined]
    with path.open("a") as fh:
        for i, row in enumerate(df.to_dict("records")):
            feats = {k: (None if isinstance(row[k], float) and np.isnan(row[k]) else row[k]) for k in FEATURES}
            fh.write(
                json.dumps(
                    {
                        "timestamp": t0 + i * 0.1,
                        "model": "churn",
                        "version": "1",
                        "features": feats,
                        "prediction": int(preds[i]),
                        "label": int(row["churn"]),
                    }
                )
                + "\n"
            )


def test_drift_opens_one_finding_with_report_and_the_retrain_rule_runs_the_gate(tmp_path: Path) -> None:
    model_dir, ref = tmp_path / "models" / "churn", tmp_path / "ref.csv"
    set_up_model(model_dir, ref)
    _, model = DirectoryStore(model_dir).load()
    log = tmp_path / "logs" / "churn.jsonl"
    log.parent.mkdir()
    cfg = PredictionLogConfig(model="churn", path=str(log), reference=ref, window={"rows": 300}, model_dir=model_dir)
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    metrics = Metrics()
    w = DriftWatch(cfg, store, metrics, tmp_path / "state")
    log_rows(log, 600, 0.0, 1, model, 1000.0)
    with log.open("a") as fh:
        fh.write("{not json\n")
    assert run_poll(w, 2000.0) == [], "windows like the reference are not drift"
    assert 'aiopsd_prediction_log_bad_rows_total{model="churn"} 1.0' in _metrics_text(metrics)
    log_rows(log, 600, 1.0, 2, model, 3000.0)
    found = run_poll(DriftWatch(cfg, store, metrics, tmp_path / "state"), 4000.0)  # a restarted daemon continues
    firing = [f for f in found if f.status == FindingStatus.FIRING]
    assert len({f.id for f in firing}) == 1 and len(firing) == 2
    f = store.active_findings()[0]
    assert "monthly_charges" in f.details["drifted"]
    assert f.details["columns"]["monthly_charges"]["drift"] is True
    assert f.details["columns"]["payment"]["drift"] is False
    html = Path(f.details["report_html"])
    assert html.is_file() and "monthly_charges" in html.read_text()
    assert json.loads(Path(f.details["report_json"]).read_text())

    rule = Rule.model_validate(
        {"name": "retrain", "match": {"kind": "drift"}, "action": {"retrain": {}}, "guards": {"timeout": "5m"}}
    )
    action = render(rule.action.model_dump(mode="json"), template_context(f))
    assert render_targets(rule, f) == ()
    run = ActionRun(
        id=1,
        decision_id="d",
        rule="retrain",
        kind="retrain",
        targets=(),
        status=RunStatus.RUNNING,
        created_at=datetime.now(UTC),
        action=action,
    )
    settings = Settings(state_dir=tmp_path / "state", prediction_logs=[cfg])
    result = execute(
        run, context_for(settings, private_dir=tmp_path / "run", timeout=300, cancel=__import__("threading").Event())
    )
    assert result.status == RunStatus.SUCCEEDED, result.output + result.error
    assert "gate" in result.output
    versions = DirectoryStore(model_dir).list_versions()
    assert len(versions) == 2, "the candidate is stored, promoted or rejected"
    lineage = versions[1].meta["lineage"]
    assert lineage["sources"][0]["path"] == f.details["window_csv"] and lineage["parent"] == 1
    assert Path(lineage["table"]["path"]).parent == tmp_path / "state" / "training"
    store.close()


def _metrics_text(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()
