"""The silence executor: an Alertmanager silence through its API v2, for the finding's labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from aiopsd.actions.base import ActionContext, ActionResult
from aiopsd.errors import ActionError
from aiopsd.models import ActionRun, RunStatus


def execute_silence(run: ActionRun, ctx: ActionContext) -> ActionResult:
    """Create the silence (matchers rendered from the finding's labels) for ``duration`` seconds."""
    if not ctx.alertmanager_url:
        raise ActionError("a silence action needs alertmanager_url in the config")
    params = run.action.get("silence") or {}
    matchers = params.get("matchers") or {}
    if not matchers:
        raise ActionError("a silence action needs matchers (rendered from the finding's labels)")
    now = datetime.now(UTC)
    body = {
        "matchers": [{"name": k, "value": str(v), "isRegex": False, "isEqual": True} for k, v in matchers.items()],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(seconds=float(params.get("duration", 3600)))).isoformat(),
        "createdBy": "aiopsd",
        "comment": str(params.get("comment", "silenced by aiopsd")),
    }
    if run.dry_run:
        return ActionResult(RunStatus.SUCCEEDED, 0, f"dry run: would create silence {body}")
    try:
        resp = httpx.post(
            f"{ctx.alertmanager_url.rstrip('/')}/api/v2/silences", json=body, timeout=min(ctx.timeout, 30.0)
        )
    except httpx.HTTPError as exc:
        return ActionResult(RunStatus.FAILED, None, "", f"Alertmanager unreachable: {exc}")
    if resp.status_code != 200:
        return ActionResult(
            RunStatus.FAILED, resp.status_code, resp.text, f"Alertmanager refused the silence: HTTP {resp.status_code}"
        )
    return ActionResult(RunStatus.SUCCEEDED, 0, f"silence {resp.json().get('silenceID')} created")
