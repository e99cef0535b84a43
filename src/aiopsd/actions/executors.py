"""Route an action run to the code that executes its kind."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from aiopsd.actions.job_template import run_job_template
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
                            private_dir=private_dir, cancel=cancel)
    if run.kind == "notify":
        message = str((action.get("notify") or {}).get("message", ""))
        logger.warning("notify (rule %s): %s", run.rule, message)
        return ActionResult(RunStatus.SUCCEEDED, 0, message)
    if run.kind == "silence":
        return _silence(run, settings, timeout)
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
