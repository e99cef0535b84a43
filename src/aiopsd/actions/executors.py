"""Route an action run to the code that executes its kind."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from aiopsd.actions.job_template import run_job_template
from aiopsd.actions.notify import send_notify
from aiopsd.actions.playbook import ActionResult, run_playbook
from aiopsd.config import Settings
from aiopsd.errors import ActionError
from aiopsd.models import ActionRun, RunStatus

logger = logging.getLogger(__name__)


def execute(run: ActionRun, *, settings: Settings, private_dir: Path, timeout: float,
            cancel: threading.Event) -> ActionResult:
    action = run.action
    if run.kind == "playbook":
        extra = {**settings.playbook_vars, "aiopsd_run_id": run.id, "aiopsd_rule": run.rule,
                 "aiopsd_dry_run": run.dry_run, **dict(action.get("extra_vars") or {})}
        return run_playbook(playbooks_dir=settings.playbooks_dir, playbook=str(action["playbook"]),
                            targets=run.targets, extra_vars=extra, check=run.dry_run, timeout=timeout,
                            private_dir=private_dir, cancel=cancel, ports=action.get("target_ports") or None,
                            template_vars=action.get("template_vars") or None)
    if run.kind == "notify":
        return send_notify(run, settings.notify_channels, cancel, timeout)
    if run.kind == "silence":
        return _silence(run, settings, timeout)
    if run.kind == "retrain":
        return _retrain(run, settings, timeout, cancel)
    if run.kind == "job_template":
        return run_job_template(settings.awx, dict(action.get("job_template") or {}), timeout=timeout,
                                dry_run=run.dry_run, cancel=cancel)
    raise ActionError(f"action kind {run.kind!r} cannot run in this version of aiopsd")


def _silence(run: ActionRun, settings: Settings, timeout: float) -> ActionResult:
    """Create an Alertmanager silence through its API v2 for the finding's labels."""
    if not settings.alertmanager_url:
        raise ActionError("a silence action needs alertmanager_url in the config")
    params = run.action.get("silence") or {}
    matchers = params.get("matchers") or {}
    if not matchers:
        raise ActionError("a silence action needs matchers (rendered from the finding's labels)")
    now = datetime.now(UTC)
    body = {
        "matchers": [{"name": k, "value": str(v), "isRegex": False, "isEqual": True} for k, v in matchers.items()],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(seconds=float(params.get("duration", 3600))))
        .isoformat(), "createdBy": "aiopsd", "comment": str(params.get("comment", "silenced by aiopsd"))}
    if run.dry_run:
        return ActionResult(RunStatus.SUCCEEDED, 0, f"dry run: would create silence {body}")
    try:
        resp = httpx.post(f"{settings.alertmanager_url.rstrip('/')}/api/v2/silences", json=body,
                          timeout=min(timeout, 30.0))
    except httpx.HTTPError as exc:
        return ActionResult(RunStatus.FAILED, None, "", f"Alertmanager unreachable: {exc}")
    if resp.status_code != 200:
        return ActionResult(RunStatus.FAILED, resp.status_code, resp.text,
                            f"Alertmanager refused the silence: HTTP {resp.status_code}")
    return ActionResult(RunStatus.SUCCEEDED, 0, f"silence {resp.json().get('silenceID')} created")


def _retrain(run: ActionRun, settings: Settings, timeout: float, cancel: threading.Event) -> ActionResult:
    """Run the gated retrain job in a subprocess; a rejected candidate is a successful run that changed nothing."""
    from aiopsd.actions.retrain import RetrainParams, run_retrain
    from aiopsd.model_store import spec_for

    p = run.action.get("retrain") or {}
    log = next((pl for pl in settings.prediction_logs if pl.model == p.get("model")), None)
    store = spec_for(log.model_store, model=log.model, model_dir=log.model_dir) \
        if log is not None and log.model_store is not None else None
    if store is None and (not p.get("model_dir") or p["model_dir"] == "None"):
        raise ActionError("retrain needs a model_dir or model_store (set one on the prediction log or in the rule)")
    if not p.get("data") or not Path(p["data"]).is_file():
        raise ActionError(f"retrain data {p.get('data')!r} not found")
    params = RetrainParams(
        model_dir=Path(p["model_dir"]) if store is None else None, store=store, state_dir=settings.state_dir.resolve(),
        data_path=Path(p["data"]), label=str(p.get("label", "label")),
        reference_path=Path(p["reference"]) if p.get("include_reference") and p.get("reference") else None,
        job=p.get("job", "sklearn"), command=p.get("command"), min_improvement=float(p.get("min_improvement", 0.0)),
        holdout=float(p.get("holdout", 0.25)))
    if run.dry_run:
        return ActionResult(RunStatus.SUCCEEDED, 0,
                            f"dry run: would retrain {params.open_store().label} on {params.data_path}")
    result = run_retrain(params, timeout, cancel=cancel)
    text = f"{result.status}: {result.message}\n{result.model_dump_json(indent=2, exclude={'output'})}\n{result.output}"
    status = {"promoted": RunStatus.SUCCEEDED, "rejected": RunStatus.SUCCEEDED, "failed": RunStatus.FAILED,
              "timed_out": RunStatus.TIMED_OUT, "canceled": RunStatus.CANCELED}[result.status]
    return ActionResult(status, 0 if status == RunStatus.SUCCEEDED else None, text,
                        "" if status == RunStatus.SUCCEEDED else result.message)
