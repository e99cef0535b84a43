"""One executor per action kind, in one registry with the same keys as the engine's ACTIONS."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from aiopsd.actions.base import ActionContext, ActionResult, Executor
from aiopsd.actions.job_template import execute_job_template
from aiopsd.actions.log import execute_log
from aiopsd.actions.notify import execute_notify
from aiopsd.actions.playbook import execute_playbook
from aiopsd.actions.retrain import execute_retrain
from aiopsd.actions.silence import execute_silence
from aiopsd.config import Settings
from aiopsd.errors import ActionError
from aiopsd.model_store import StoreSpec, spec_for
from aiopsd.models import ActionRun

EXECUTORS: dict[str, Executor] = {
    "playbook": execute_playbook,
    "retrain": execute_retrain,
    "silence": execute_silence,
    "notify": execute_notify,
    "job_template": execute_job_template,
    "log": execute_log,
}


def context_for(settings: Settings, *, private_dir: Path, timeout: float, cancel: threading.Event) -> ActionContext:
    """The context of one run: its bounds, and the parts of the config actions read."""
    stores: dict[str, StoreSpec] = {}
    for log in settings.prediction_logs:
        spec = (
            spec_for(log.model_store, model=log.model, model_dir=log.model_dir) if log.model_store is not None else None
        )
        if spec is not None:
            stores[log.model] = spec
    return ActionContext(
        private_dir=private_dir,
        timeout=timeout,
        cancel=cancel,
        playbooks_dir=settings.playbooks_dir,
        state_dir=settings.state_dir,
        awx=settings.awx,
        playbook_vars=settings.playbook_vars,
        alertmanager_url=settings.alertmanager_url,
        notify_channels=settings.notify_channels,
        model_stores=stores,
        shadow_models=frozenset(
            log.model for log in settings.prediction_logs if log.lifecycle is not None and log.lifecycle.shadow
        ),
        env=dict(os.environ),
    )


def execute(run: ActionRun, ctx: ActionContext) -> ActionResult:
    """Run ``run`` with the executor of its kind."""
    executor = EXECUTORS.get(run.kind)
    if executor is None:
        raise ActionError(f"action kind {run.kind!r} cannot run in this version of aiopsd")
    return executor(run, ctx)
