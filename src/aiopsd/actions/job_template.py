"""Launch an AWX / Ansible Automation Platform job template and follow it to the end.

Uses the controller's REST API v2 with token auth (``Authorization: Bearer``):
``POST /api/v2/job_templates/{id}/launch/`` starts a job, ``GET /api/v2/jobs/{id}/``
is polled until the job reaches a finished status, ``POST /api/v2/jobs/{id}/cancel/``
stops it when the rule's timeout passes or the daemon shuts down, and the job's
``/api/v2/jobs/{id}/stdout/`` link is kept as the run's artefact.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx

from aiopsd.actions.base import ActionContext, ActionResult
from aiopsd.actions.playbook import tail
from aiopsd.config import AWXConfig
from aiopsd.errors import ActionError
from aiopsd.models import ActionRun, RunStatus

logger = logging.getLogger(__name__)

FINISHED = {
    "successful": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
    "error": RunStatus.FAILED,
    "canceled": RunStatus.CANCELED,
}


def _token(cfg: AWXConfig) -> str:
    if cfg.token_file is None:
        raise ActionError("a job_template action needs awx.token_file (an AWX OAuth2/personal access token)")
    try:
        token = cfg.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ActionError(f"cannot read awx.token_file {cfg.token_file}: {exc.strerror}") from None
    if not token:
        raise ActionError(f"awx.token_file {cfg.token_file} is empty")
    return token


def execute_job_template(run: ActionRun, ctx: ActionContext) -> ActionResult:
    """The job_template executor: launch the run's template in AWX (its limit already checked and bound)."""
    return run_job_template(
        ctx.awx, dict(run.action.get("job_template") or {}), timeout=ctx.timeout, dry_run=run.dry_run, cancel=ctx.cancel
    )


def run_job_template(
    cfg: AWXConfig, params: dict[str, Any], *, timeout: float, dry_run: bool, cancel: threading.Event | None = None
) -> ActionResult:
    """Launch, follow until finished, cancel at ``timeout``; never raises for a failing job."""
    if not cfg.url:
        raise ActionError("a job_template action needs awx.url in the config")
    template = params.get("id")
    body: dict[str, Any] = {}
    if params.get("extra_vars"):
        body["extra_vars"] = params["extra_vars"]
    if params.get("limit"):
        body["limit"] = params["limit"]
    base = cfg.url.rstrip("/")
    launch = f"{base}/api/v2/job_templates/{template}/launch/"
    if dry_run:
        return ActionResult(RunStatus.SUCCEEDED, 0, f"dry run: would POST {launch} with {body}")
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {_token(cfg)}", "Accept": "application/json"}
    with httpx.Client(headers=headers, verify=cfg.verify_tls, timeout=min(30.0, max(timeout, 1.0))) as client:
        try:
            resp = client.post(launch, json=body)
        except httpx.HTTPError as exc:
            return ActionResult(RunStatus.FAILED, None, "", f"AWX unreachable at {base}: {exc}")
        if resp.status_code not in (200, 201):
            return ActionResult(
                RunStatus.FAILED,
                resp.status_code,
                tail(resp.text, 4096),
                f"AWX refused to launch job template {template}: HTTP {resp.status_code}",
            )
        launched = resp.json()
        job = launched.get("job") or launched.get("id")
        job_url = f"{base}/api/v2/jobs/{job}/"
        stdout_url = f"{job_url}stdout/?format=txt"
        logger.info("AWX job %s launched from template %s", job, template)
        status, last_error = "pending", ""
        while True:
            try:
                r = client.get(job_url)
                if r.status_code == 200:
                    status = str(r.json().get("status", status))
                    last_error = ""
                else:
                    last_error = f"HTTP {r.status_code} reading {job_url}"
            except httpx.HTTPError as exc:  # a blip while following: keep following until the deadline
                last_error = f"{exc}"
            if status in FINISHED:
                break
            stopped = cancel is not None and cancel.is_set()
            if stopped or time.monotonic() >= deadline:
                how = "canceled" if stopped else f"timed out after {timeout:g}s"
                try:
                    c = client.post(f"{job_url}cancel/")
                    sent = f"cancel requested (HTTP {c.status_code})"
                except httpx.HTTPError as exc:
                    sent = f"cancel request failed: {exc}"
                output = f"AWX job {job} (template {template}): {status}\nstdout: {stdout_url}\n"
                return ActionResult(
                    RunStatus.CANCELED if stopped else RunStatus.TIMED_OUT,
                    None,
                    output,
                    f"{how}; AWX job {job} was {status}, {sent}"
                    + (f"; last error: {last_error}" if last_error else ""),
                    stdout_url,
                )
            wait = min(cfg.poll_interval, max(0.0, deadline - time.monotonic()))
            if cancel is not None:
                cancel.wait(wait)
            else:
                time.sleep(wait)
        text = ""
        try:
            out = client.get(stdout_url)
            if out.status_code == 200:
                text = out.text
        except httpx.HTTPError:
            logger.debug("could not fetch stdout of AWX job %s", job, exc_info=True)
    result = FINISHED[status]
    output = f"AWX job {job} (template {template}): {status}\nstdout: {stdout_url}\n\n{tail(text)}"
    error = "" if result == RunStatus.SUCCEEDED else f"AWX job {job} ended {status}"
    return ActionResult(result, 0 if result == RunStatus.SUCCEEDED else None, output, error, stdout_url)
