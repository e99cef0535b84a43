"""Retrain a model behind a gate, as a subprocess bounded like a playbook.

:func:`run_retrain` (what the daemon calls) starts ``python -m
aiopsd.actions.retrain PARAMS.json RESULT.json`` through the same bounded runner
as playbooks (:func:`aiopsd.actions.process.run_bounded`): on timeout or cancel
(the SIGTERM drain) it kills the job's whole process tree, including anything
that left its session, and the run ends ``timed_out`` or ``canceled``. The job:

1. reads the labelled data (CSV or Parquet), sorted by ``timestamp`` when that
   column exists, and holds back the newest ``holdout`` share of rows;
2. trains a candidate on the rest (plus ``reference_path`` rows when given):
   ``job="sklearn"`` clones the current pipeline (``sklearn.base.clone``) and
   fits it; ``job="command"`` runs ``command`` with ``AIOPSD_TRAIN_DATA``,
   ``AIOPSD_CANDIDATE`` (where it must write a joblib model),
   ``AIOPSD_CURRENT_MODEL`` and ``AIOPSD_MODEL_DIR`` in its environment;
3. scores candidate and current on the held-back slice with ``metric``
   (default: accuracy for classification, MAE for regression) and promotes the
   candidate only if it is better by at least ``min_improvement`` (in metric
   units, sign-adjusted so "better" is always positive); otherwise the
   candidate is stored as ``rejected`` with its metrics and never served.
   With ``shadow`` (the prediction log has ``lifecycle.shadow``) a candidate that
   passes is stored as ``shadow`` instead of promoted: the drift watch compares it
   with the champion on live rows and promotes or rejects it
   (:mod:`aiopsd.sources.predictions.lifecycle`); an older challenger still in
   shadow is rejected as superseded. With no champion to compare with, it is promoted.

The model lives in a model store (:mod:`aiopsd.model_store`: ``store``, else the
directory ``model_dir``). The candidate is fitted on the training table as kept
under ``<state_dir>/training/<sha256>.csv`` and registered with its lineage
(:mod:`aiopsd.model_store.lineage`), so it can be retrained from the lineage alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

import aiopsd
from aiopsd.actions.base import ActionContext, ActionResult
from aiopsd.actions.process import run_bounded
from aiopsd.errors import ActionError
from aiopsd.model_store import ModelStore, RegistryError, Status, StoreSpec, open_store
from aiopsd.model_store import lineage as lin
from aiopsd.models import ActionRun, Frozen, RunStatus

Metric = Literal["accuracy", "f1", "mae", "mse", "r2"]
LOWER_IS_BETTER = frozenset({"mae", "mse"})


class RetrainParams(Frozen):
    """Parameters of one retrain run (JSON-able: they travel to the subprocess as a file)."""

    model_dir: Path | None = None
    # Where the model lives; None: the directory model_dir.
    store: StoreSpec | None = None
    # Training tables are kept under <state_dir>/training (None: <model_dir>/training).
    state_dir: Path | None = None
    data_path: Path
    label: str
    features: list[str] | None = None
    reference_path: Path | None = None
    job: Literal["sklearn", "command"] = "sklearn"
    command: list[str] | None = None
    metric: Metric | None = None
    min_improvement: float = 0.0
    holdout: float = Field(default=0.25, gt=0.0, lt=1.0)
    # Passed candidates enter shadow instead of being promoted (the log's lifecycle.shadow).
    shadow: bool = False

    @model_validator(mode="after")
    def _some_store(self) -> RetrainParams:
        if self.store is None and self.model_dir is None:
            raise ValueError("retrain needs a model store or a model_dir")
        if self.state_dir is None and self.model_dir is None:
            raise ValueError("retrain into a model store other than a directory needs state_dir")
        return self

    @property
    def tables_dir(self) -> Path:
        base = self.state_dir if self.state_dir is not None else self.model_dir
        assert base is not None  # checked above
        return base / lin.TABLES

    def open_store(self) -> ModelStore:
        return open_store(self.store or StoreSpec(kind="directory", path=self.model_dir))


class RetrainResult(Frozen):
    """What happened; ``status`` is the action outcome, ``promoted`` whether ``current`` changed."""

    status: Literal["promoted", "shadow", "rejected", "failed", "timed_out", "canceled"]
    promoted: bool = False
    candidate_version: int | None = None
    previous_version: int | None = None
    metric: str | None = None
    candidate_score: float | None = None
    current_score: float | None = None
    improvement: float | None = None
    rows_train: int = 0
    rows_holdout: int = 0
    message: str = ""
    output: str = ""
    duration_seconds: float = 0.0


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    return pd.read_csv(path)


def score(metric: Metric, y_true: Any, y_pred: Any) -> float:
    from sklearn import metrics as m

    if metric == "accuracy":
        return float(m.accuracy_score(y_true, y_pred))
    if metric == "f1":
        return float(m.f1_score(y_true, y_pred, average="macro", zero_division=0.0))
    if metric == "mae":
        return float(m.mean_absolute_error(y_true, y_pred))
    if metric == "mse":
        return float(m.mean_squared_error(y_true, y_pred))
    return float(m.r2_score(y_true, y_pred))


def _default_metric(model: Any) -> Metric:
    from sklearn.base import is_classifier

    return "accuracy" if is_classifier(model) else "mae"


def _train_command(params: RetrainParams, train_path: Path, current: Any, workdir: Path) -> Any:
    import joblib

    if not params.command:
        raise ActionError("job 'command' needs a command to run")
    cand_path, cur_path = workdir / "candidate.joblib", workdir / "current.joblib"
    if current is not None:
        joblib.dump(current, cur_path)
    env = {
        **os.environ,
        "AIOPSD_TRAIN_DATA": str(train_path),
        "AIOPSD_CANDIDATE": str(cand_path),
        "AIOPSD_MODEL_DIR": str(params.model_dir or ""),
        "AIOPSD_CURRENT_MODEL": str(cur_path),
    }
    proc = subprocess.run(params.command, env=env, check=False)  # inherits the run marker: killed with us
    if proc.returncode != 0:
        raise ActionError(f"retrain command exited with {proc.returncode}")
    if not cand_path.is_file():
        raise ActionError("retrain command wrote no model to $AIOPSD_CANDIDATE")
    return joblib.load(cand_path)


def retrain_job(params: RetrainParams, workdir: Path) -> RetrainResult:
    """The job itself (runs inside the subprocess; callable directly in tests)."""
    from sklearn.base import clone

    data = _read_table(params.data_path)
    if params.label not in data.columns:
        raise ActionError(f"{params.data_path} has no label column {params.label!r}")
    data = data[data[params.label].notna()]
    if "timestamp" in data.columns:
        data = data.sort_values("timestamp", kind="stable")
    n_hold = max(round(len(data) * params.holdout), 1)
    if len(data) - n_hold < 2:
        raise ActionError(f"only {len(data)} labelled rows in {params.data_path}; need more to retrain")
    train, hold = data.iloc[:-n_hold], data.iloc[-n_hold:]
    if params.reference_path is not None:
        train = pd.concat([_read_table(params.reference_path), train], ignore_index=True)
    store = params.open_store()
    try:
        cur_version, current = store.load()
    except RegistryError:
        cur_version, current = None, None
    features = (
        params.features
        or list(getattr(current, "feature_names_in_", []))
        or [c for c in data.columns if c not in {params.label, "timestamp"}]
    )
    missing = [c for c in [*features, params.label] if c not in train.columns]
    if missing:
        raise ActionError(f"{params.data_path} lacks column(s) {', '.join(missing)} the model needs")
    # The candidate is fitted on the table as kept (read back), so the lineage reproduces it exactly.
    keep = [*features, params.label, *(["timestamp"] if "timestamp" in train.columns else [])]
    table_path, table_sha = lin.save_training_table(train[keep], params.tables_dir)
    train = lin.read_table({"table": {"path": str(table_path), "sha256": table_sha}})
    if params.job == "sklearn":
        if current is None:
            raise ActionError(f"{store.label} has no current model to clone; promote one first")
        candidate = clone(current).fit(train[features], train[params.label])
    else:
        candidate = _train_command(params, table_path, current, workdir)
    metric: Metric = params.metric or _default_metric(candidate)
    y = hold[params.label].to_numpy()
    cand_score = score(metric, y, candidate.predict(hold[features]))
    cur_score = score(metric, y, current.predict(hold[features])) if current is not None else None
    if cur_score is None:
        improvement = float("inf")
    else:
        improvement = (cur_score - cand_score) if metric in LOWER_IS_BETTER else (cand_score - cur_score)
    accepted = cur_score is None or improvement >= params.min_improvement
    metrics = {
        "metric": metric,
        "holdout": {"candidate": cand_score, "current": cur_score},
        "improvement": None if not np.isfinite(improvement) else improvement,
        "min_improvement": params.min_improvement,
        "rows_train": len(train),
        "rows_holdout": len(hold),
        "compared_with_version": cur_version,
    }
    sources = [lin.source(p) for p in (params.data_path, params.reference_path) if p is not None]
    lineage = lin.build(
        table=train,
        table_path=table_path,
        table_sha256=table_sha,
        label=params.label,
        features=features,
        sources=sources,
        parent=cur_version,
        job=params.job,
        estimator=candidate,
    )
    meta = {
        "job": params.job,
        "parent": cur_version,
        "data": str(params.data_path),
        "features": features,
        "lineage": lineage,
    }
    shadow = accepted and params.shadow and cur_version is not None
    status: Status = "shadow" if shadow else "candidate" if accepted else "rejected"
    version = store.register(candidate, metrics=metrics, meta=meta, status=status)
    if shadow:
        _supersede(store, version.number)
    elif accepted:
        store.promote(version.number, reason="retrain gate passed")
    verdict = ("passed, in shadow beside the champion" if shadow else "passed") if accepted else "failed"
    msg = (
        f"candidate v{version.number} {metric}={cand_score:.4g} vs current "
        f"{'none' if cur_score is None else f'v{cur_version} {metric}={cur_score:.4g}'}: gate {verdict} "
        f"(min_improvement {params.min_improvement})"
    )
    return RetrainResult(
        status="shadow" if shadow else "promoted" if accepted else "rejected",
        promoted=accepted and not shadow,
        candidate_version=version.number,
        previous_version=cur_version,
        metric=metric,
        candidate_score=cand_score,
        current_score=cur_score,
        improvement=metrics["improvement"],
        rows_train=len(train),
        rows_holdout=len(hold),
        message=msg,
    )


def _supersede(store: ModelStore, number: int) -> None:
    """One challenger at a time: an older one still in shadow is rejected, never served."""
    for v in store.list_versions():
        if v.status == "shadow" and v.number != number:
            rec = v.meta.get("lifecycle") if isinstance(v.meta.get("lifecycle"), dict) else {}
            decision = {"outcome": "reject", "by": "retrain", "reason": f"superseded by v{number} in shadow"}
            store.mark(
                v.number, status="rejected", lifecycle={**(rec or {}), "state": "rejected", "decision": decision}
            )


_RUN_STATUS = {
    "promoted": RunStatus.SUCCEEDED,
    "shadow": RunStatus.SUCCEEDED,
    "rejected": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
    "timed_out": RunStatus.TIMED_OUT,
    "canceled": RunStatus.CANCELED,
}


def execute_retrain(run: ActionRun, ctx: ActionContext) -> ActionResult:
    """The retrain executor: the gated job as a bounded subprocess; a rejected candidate is a
    successful run that changed nothing."""
    p = run.action.get("retrain") or {}
    store = ctx.model_stores.get(str(p.get("model")))
    if store is None and (not p.get("model_dir") or p["model_dir"] == "None"):
        raise ActionError("retrain needs a model_dir or model_store (set one on the prediction log or in the rule)")
    if not p.get("data") or not Path(p["data"]).is_file():
        raise ActionError(f"retrain data {p.get('data')!r} not found")
    params = RetrainParams(
        model_dir=Path(p["model_dir"]) if store is None else None,
        store=store,
        state_dir=ctx.state_dir.resolve(),
        data_path=Path(p["data"]),
        label=str(p.get("label", "label")),
        reference_path=Path(p["reference"]) if p.get("include_reference") and p.get("reference") else None,
        job=p.get("job", "sklearn"),
        command=p.get("command"),
        min_improvement=float(p.get("min_improvement", 0.0)),
        holdout=float(p.get("holdout", 0.25)),
        shadow=str(p.get("model")) in ctx.shadow_models,
    )
    if run.dry_run:
        return ActionResult(
            RunStatus.SUCCEEDED, 0, f"dry run: would retrain {params.open_store().label} on {params.data_path}"
        )
    result = run_retrain(params, ctx.timeout, cancel=ctx.cancel, env=ctx.env)
    text = f"{result.status}: {result.message}\n{result.model_dump_json(indent=2, exclude={'output'})}\n{result.output}"
    status = _RUN_STATUS[result.status]
    return ActionResult(
        status,
        0 if status == RunStatus.SUCCEEDED else None,
        text,
        "" if status == RunStatus.SUCCEEDED else result.message,
    )


def run_retrain(
    params: RetrainParams,
    timeout: float,
    *,
    python: str | None = None,
    cancel: threading.Event | None = None,
    env: Mapping[str, str] | None = None,
) -> RetrainResult:
    """Run the retrain job as a bounded process; never raises for job failures."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aiopsd-retrain-") as tmp:
        pfile, rfile, log = Path(tmp) / "params.json", Path(tmp) / "result.json", Path(tmp) / "output.log"
        pfile.write_text(params.model_dump_json())
        # The child imports the same aiopsd as this process, wherever that was installed or checked out.
        pkg_root = str(Path(aiopsd.__file__).resolve().parent.parent)
        base = os.environ if env is None else env
        path = os.pathsep.join(filter(None, [pkg_root, base.get("PYTHONPATH")]))
        cmd = [python or sys.executable, "-m", "aiopsd.actions.retrain", str(pfile), str(rfile)]
        done = run_bounded(
            cmd, env={**base, "PYTHONPATH": path}, cwd=Path(tmp), timeout=timeout, output=log, cancel=cancel
        )
        output = log.read_text(errors="replace")[-4000:]
        took = time.monotonic() - started
        if done.timed_out:
            return RetrainResult(
                status="timed_out",
                message=f"retrain killed after {timeout:g}s timeout",
                output=output,
                duration_seconds=took,
            )
        if done.canceled:
            return RetrainResult(
                status="canceled",
                message=f"retrain canceled after {took:.0f}s (shutdown)",
                output=output,
                duration_seconds=took,
            )
        if done.rc != 0 or not rfile.is_file():
            last = output.strip().splitlines()[-1] if output.strip() else f"exit code {done.rc}"
            return RetrainResult(status="failed", message=last, output=output, duration_seconds=took)
        result = RetrainResult.model_validate_json(rfile.read_text())
        return result.model_copy(update={"output": output, "duration_seconds": took})


def main(argv: list[str] | None = None) -> int:
    """``python -m aiopsd.actions.retrain PARAMS.json RESULT.json``"""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m aiopsd.actions.retrain PARAMS.json RESULT.json", file=sys.stderr)
        return 2
    params = RetrainParams.model_validate_json(Path(args[0]).read_text())
    with tempfile.TemporaryDirectory(prefix="aiopsd-job-") as work:
        try:
            result = retrain_job(params, Path(work))
        except Exception as exc:  # reported to the parent as a failed run with this message
            print(f"retrain failed: {exc}", file=sys.stderr)
            return 1
    Path(args[1]).write_text(json.dumps(result.model_dump(mode="json")))
    print(result.message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
