from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from sklearn.dummy import DummyClassifier
from typer.testing import CliRunner

from aiopsd.cli.ml import create_model_app
from aiopsd.model_store.directory import DirectoryStore
from aiopsd.store import StateStore


def test_model_approve_promotes_a_challenger_and_names_the_operator_in_the_audit(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "models")
    fitted = DummyClassifier().fit(np.zeros((2, 1)), [0, 1])
    store.promote(store.register(fitted, metrics={}).number)
    store.register(fitted, metrics={}, status="shadow")
    store.register(fitted, metrics={}, status="rejected")
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = tmp_path / "aiopsd.yaml"
    log = {"model": "churn", "path": "log.jsonl", "model_dir": "models", "lifecycle": {"shadow": {"rows": 100}}}
    config.write_text(yaml.safe_dump({"state_url": state_url, "state_dir": "state", "prediction_logs": [log]}))
    app = create_model_app()
    refused = CliRunner().invoke(app, ["approve", "3", "--model", "churn", "--config", str(config)])
    assert refused.exit_code != 0 and "only a version in shadow or a candidate" in refused.output
    done = CliRunner().invoke(app, ["approve", "2", "--model", "churn", "--config", str(config)])
    assert done.exit_code == 0, done.output
    assert "now serves version 2" in done.output and store.current() == 2
    with StateStore(state_url) as state:
        [entry] = [e for e in state.audit_entries(limit=10) if e["kind"] == "model_promoted"]
    assert entry["event"]["lifecycle"]["decision"]["by"].startswith("cli")
