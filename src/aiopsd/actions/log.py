"""The log executor: one structured line (JSON) in the daemon's log, kept as the run's output too.

The line is an audit mark a log pipeline (journald, Loki, ...) can select on: ``event``
is always ``aiopsd_action_log``. Every value in it was rendered once by the engine and is
written as JSON data, so a label holding a newline or a fake log prefix stays inside its
string and cannot forge a second line.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiopsd.actions.base import ActionContext, ActionResult
from aiopsd.models import ActionRun, RunStatus

logger = logging.getLogger(__name__)

EVENT = "aiopsd_action_log"
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def log_line(run: ActionRun) -> str:
    """The run's rendered ``log`` parameters as one JSON line."""
    params: dict[str, Any] = dict(run.action.get("log") or {})
    try:
        finding = json.loads(params.get("finding_data") or "{}")
    except ValueError:
        finding = {}
    record = {
        "event": EVENT,
        "rule": run.rule,
        "run_id": run.id,
        "message": str(params.get("message", "")),
        "fields": {str(k): str(v) for k, v in dict(params.get("fields") or {}).items()},
        "finding": finding if isinstance(finding, dict) else {},
        "targets": list(run.targets),
    }
    return json.dumps(record, sort_keys=True, ensure_ascii=True, default=str)


def execute_log(run: ActionRun, ctx: ActionContext) -> ActionResult:
    """Write the line at the rule's level (a dry run only says what it would write)."""
    line = log_line(run)
    if run.dry_run:
        return ActionResult(RunStatus.SUCCEEDED, 0, f"dry run: would log {line}")
    level = _LEVELS.get(str((run.action.get("log") or {}).get("level")), logging.INFO)
    logger.log(level, "%s", line)
    return ActionResult(RunStatus.SUCCEEDED, 0, line)
