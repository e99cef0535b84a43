"""A shadow promotion SIGKILLed between the registry write and the audit write, on both store backends:
the restarted lifecycle finishes it, and there is exactly one champion and one audit entry."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from aiopsd.config import PredictionLogConfig
from aiopsd.demo.mlflow_server import MlflowServer
from aiopsd.model_store import StoreSpec, open_store
from aiopsd.sources.predictions.lifecycle import ModelLifecycle
from aiopsd.store import StateStore
from tests.support import REPO, tool_env
from tests.unit.sources.predictions.test_lifecycle import data

pytestmark = pytest.mark.timeout(900)
_names = itertools.count(1)

CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from aiopsd.config import PredictionLogConfig
    from aiopsd.model_store import StoreSpec, open_store
    from aiopsd.sources.predictions.lifecycle import ModelLifecycle
    from tests.unit.sources.predictions.test_lifecycle import window

    class KillOnAudit:
        def audit(self, kind, now, event):
            os.kill(os.getpid(), signal.SIGKILL)  # the registry write is done, the audit write never happens

    cfg = PredictionLogConfig.model_validate_json(sys.argv[1])
    store = open_store(StoreSpec.model_validate_json(sys.argv[2]))
    life = ModelLifecycle(cfg, store, KillOnAudit(), Path(sys.argv[3]))
    life.log_time = 1000.0
    life.refresh(0.0)
    life.observe(window(1001, 450, version=1, right=0.7, seed=14))
    life.commit(1e9)
    sys.exit(3)  # not reached
""")


@pytest.mark.parametrize("kind", ["directory", "mlflow"])
def test_a_promotion_killed_before_its_audit_is_finished_once_after_restart(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    place: dict[str, Any]
    if kind == "mlflow":
        server: MlflowServer = request.getfixturevalue("mlflow_server")
        spec = StoreSpec(kind="mlflow", tracking_uri=server.url, name=f"lifecycle-crash-{next(_names)}")
        place = {"model_store": spec.model_dump(mode="json")}
    else:
        spec = StoreSpec(kind="directory", path=tmp_path / "models")
        place = {"model_dir": str(tmp_path / "models")}
    store = open_store(spec)
    x, y = data(400, 1)
    store.promote(store.register(DummyClassifier(strategy="most_frequent").fit(x, y), metrics={}).number)
    store.register(LogisticRegression().fit(x, y), metrics={}, status="shadow")
    cfg = PredictionLogConfig.model_validate(
        {
            "model": "m",
            "path": str(tmp_path / "log.jsonl"),
            **place,
            "lifecycle": {"shadow": {"rows": 400}, "min_improvement": 0.05, "watch_after_promotion": "1h"},
        }
    )
    env = tool_env()
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}{os.pathsep}{REPO}"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, cfg.model_dump_json(by_alias=True), spec.model_dump_json(), str(tmp_path / "st")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == -9, child.stderr[-2000:]
    assert store.current() == 2 and store.get(2).meta["lifecycle"]["state"] == "promoting"

    with StateStore(f"sqlite:///{tmp_path / 'state.db'}") as state:
        restarted = ModelLifecycle(cfg, store, state, tmp_path / "st")
        restarted.refresh(2e9)
        restarted.commit(2e9)
        kinds = [e["kind"] for e in state.audit_entries(limit=20)]
        assert state.verify_audit().ok
    assert [v.number for v in store.list_versions() if v.current] == [2]
    assert kinds == ["model_promoted"] and store.get(2).meta["lifecycle"]["state"] == "watching"
    assert [h["version"] for h in store.history()] == [1, 2]  # v2 promoted once, not twice
    assert np.isclose(
        store.get(2).meta["lifecycle"]["watch"]["baseline"], store.get(2).meta["lifecycle"]["comparison"]["champion"]
    )
