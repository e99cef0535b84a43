"""The champion/challenger card (page and JSON) and the authenticated approval of a challenger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.dummy import DummyClassifier

from aiopsd.daemon.http.api import create_app
from aiopsd.daemon.http.auth import Credentials
from aiopsd.model_store.directory import DirectoryStore
from tests.support import make_runtime

COMPARISON = {
    "metric": "accuracy",
    "rows": 480,
    "champion": 0.71,
    "challenger": 0.93,
    "advantage": 0.22,
    "low": 0.18,
    "high": 0.26,
    "confidence": 0.95,
    "min_improvement": 0.02,
}


def model() -> DummyClassifier:
    return DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1])


@pytest.fixture
def rt(tmp_path: Path) -> Any:
    models = tmp_path / "models"
    store = DirectoryStore(models)
    store.promote(store.register(model(), metrics={}).number)
    store.register(model(), metrics={}, status="shadow")
    rec = {"state": "shadow", "champion": 1, "comparison": COMPARISON, "since": 1.0}
    store.mark(2, lifecycle={**rec, "decision": {"outcome": "pending", "by": "<script>alert(1)</script>"}})
    log = {
        "model": "churn",
        "path": str(tmp_path / "log.jsonl"),
        "model_dir": str(models),
        "lifecycle": {"shadow": {"rows": 500}, "min_improvement": 0.02},
    }
    runtime = make_runtime(tmp_path, prediction_logs=[log])
    yield runtime
    runtime.store.close()


def test_the_card_shows_rows_metric_interval_and_decision(rt: Any) -> None:
    client = TestClient(create_app(rt, Credentials(None, None, None)))
    [card] = client.get("/api/v1/models/lifecycle").json()
    assert (card["model"], card["backend"], card["champion"], card["challenger"]) == ("churn", "directory", 1, 2)
    assert card["state"] == "shadow" and card["span"] == "500 labelled rows"
    assert card["comparison"] == COMPARISON
    page = client.get("/").text
    assert "champion v1 vs challenger v2" in page and "rows compared" in page
    assert "[0.18, 0.26] at 95%" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page  # record fields are data
    assert client.get("/api/v1/overview").json()["lifecycle"] == [card]


def test_approval_needs_approval_credentials_and_is_audited(rt: Any) -> None:
    open_client = TestClient(create_app(rt, Credentials(None, None, None)))
    assert open_client.post("/api/v1/models/churn/versions/2/approve").status_code == 403
    client = TestClient(create_app(rt, Credentials(None, None, None), Credentials("s3cret", None, None)))
    assert client.post("/api/v1/models/churn/versions/2/approve").status_code == 401
    ok = {"authorization": "Bearer s3cret"}
    assert client.post("/api/v1/models/nope/versions/2/approve", headers=ok).status_code == 404
    assert client.post("/api/v1/models/churn/versions/1/approve", headers=ok).status_code == 409  # the champion
    answer = client.post("/api/v1/models/churn/versions/2/approve", headers=ok)
    assert answer.status_code == 200, answer.text
    assert answer.json()["champion"] == 2 and answer.json()["decision"]["outcome"] == "approved"
    store = DirectoryStore(rt.settings.prediction_logs[0].model_dir)
    assert store.current() == 2 and store.get(2).meta["lifecycle"]["state"] == "approved"
    [entry] = [e for e in rt.store.audit_entries(limit=10) if e["kind"] == "model_promoted"]
    assert entry["event"]["version"] == 2 and entry["event"]["lifecycle"]["decision"]["by"] == "api"
    assert client.post("/api/v1/models/churn/versions/2/approve", headers=ok).status_code == 409  # once
    assert "churn: champion v2, the challenger promoted over v1" in client.get("/").text


def test_aiopsd_status_shows_the_card_in_the_terminal(rt: Any) -> None:
    from rich.console import Console

    from aiopsd.daemon.http import overview
    from aiopsd.daemon.http.ui.terminal import render

    console = Console(width=200, record=True)
    console.print(render(overview.build(rt), "http://x"))
    text = console.export_text()
    assert "Champion / challenger" in text and "480 rows, accuracy 0.93 vs 0.71, [+0.18, +0.26]" in text
