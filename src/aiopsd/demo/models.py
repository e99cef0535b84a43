"""The demo's churn model in the store the user picked: the versioned directory, or a real MLflow
tracking server started for the demo (``aiopsd demo --model-store mlflow``).

With MLflow the prediction log also gets a lifecycle: a retrained candidate that passes the gate
enters shadow beside the champion, is promoted (the ``champion`` alias moves) once it wins on the
shadow rows, and the status page shows the champion/challenger card. The demo's model server
follows whatever the store serves (``current`` / ``models:/churn@champion``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from aiopsd.demo.mlflow_server import MlflowServer, start_mlflow
from aiopsd.demo.model_workload import PredictionLogWriter, set_up_model
from aiopsd.model_store import StoreSpec, open_store

MODEL_STORES = ("directory", "mlflow")
# The demo's lifecycle: 250 labelled rows (10 s of the demo's log) in shadow, then a 10-minute watch.
DEMO_LIFECYCLE = {"shadow": {"rows": 250}, "min_improvement": 0.0, "watch_after_promotion": "10m"}


@dataclass
class DemoModels:
    """The model store, the model server writing the prediction log, and the MLflow server if any."""

    writer: PredictionLogWriter
    log_config: dict[str, Any]
    mlflow: MlflowServer | None = None

    @classmethod
    def start(cls, work: Path, kind: str, console: Console) -> DemoModels:
        model_dir, reference_csv = work / "models" / "churn", work / "reference" / "churn.csv"
        server: MlflowServer | None = None
        spec: StoreSpec | None = None
        if kind == "mlflow":
            console.print("starting an MLflow tracking server (SQLite backend, local artifacts) ...")
            server = start_mlflow(work / "mlflow")
            spec = StoreSpec(kind="mlflow", tracking_uri=server.url, name="churn")
            console.print(f"MLflow       {server.url} (model churn, alias champion)")
        try:
            console.print("training the demo churn model (version 1) ...")
            set_up_model(model_dir, reference_csv, score=True, store=open_store(spec) if spec else None)
        except BaseException:
            if server is not None:
                server.stop()
            raise
        writer = PredictionLogWriter(path=work / "predictions" / "churn.jsonl", model_dir=model_dir, score=True)
        writer.store = spec
        log: dict[str, Any] = {"reference": str(reference_csv)}
        if spec is None:
            log["model_dir"] = str(model_dir)
        else:
            log.update(model_store=spec.model_dump(mode="json", exclude_none=True), lifecycle=DEMO_LIFECYCLE)
        return cls(writer, log, server)

    def stop(self) -> None:
        self.writer.stop()
        if self.mlflow is not None:
            self.mlflow.stop()


def lifecycle_news(api: str, seen: dict[str, Any]) -> list[tuple[str, str, str]]:
    """What changed on the champion/challenger cards since the last call: (style, what, text) lines."""
    try:
        cards = httpx.get(f"{api}/api/v1/models/lifecycle", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return []
    out: list[tuple[str, str, str]] = []
    for c in cards:
        key = f"lifecycle:{c['model']}:{c['challenger']}:{c['state']}"
        if c["challenger"] is None or key in seen:
            continue
        seen[key] = True
        k = c.get("comparison") or {}
        compared = (
            f"; {k['rows']} rows compared, {k['metric']} {k['challenger']:.3f} vs {k['champion']:.3f},"
            f" advantage [{k['low']:+.3f}, {k['high']:+.3f}]"
            if k.get("rows") and k.get("low") is not None
            else ""
        )
        decision = (c.get("decision") or {}).get("reason") or ""
        style = "red" if c["state"] in ("rejected", "rolled_back") else "green"
        out.append(
            (
                style,
                "model",
                f"{c['model']} v{c['challenger']} {c['state'].replace('_', ' ')} (champion v{c['champion']})"
                f"{compared}{': ' + decision if decision and not compared else ''}",
            )
        )
    return out
