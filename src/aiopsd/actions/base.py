"""The executor contract: ``Executor(run, context) -> ActionResult``, one per action kind.

An executor gets the run (its rendered, checked parameters) and an :class:`ActionContext`
holding what a run may use, and nothing else: where to work, how long it may take, the
cancel event, the directories and endpoints of the config, the notify channels, the model
stores and the environment its processes start from. It never raises for an action that
fails (that is a ``failed`` result); an :class:`~aiopsd.errors.ActionError` says the run
could not even start, which the dispatcher records as ``failed`` too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiopsd.models import ActionRun, RunStatus

if TYPE_CHECKING:  # config imports the notify channels, which import this module
    from aiopsd.actions.notify.base import ChannelConfig
    from aiopsd.config import AWXConfig
    from aiopsd.model_store import StoreSpec


@dataclass(frozen=True)
class ActionResult:
    status: RunStatus
    rc: int | None
    output: str
    error: str = ""
    artifact_dir: str | None = None


@dataclass(frozen=True)
class ActionContext:
    """What one run needs: its own bounds, and the few settings its kind reads."""

    # The run's private directory (ansible-runner's project and artefacts), its timeout and cancel.
    private_dir: Path
    timeout: float
    cancel: threading.Event
    playbooks_dir: Path
    state_dir: Path
    awx: AWXConfig
    # Extra vars every playbook run gets (the config's playbook_vars).
    playbook_vars: Mapping[str, Any] = field(default_factory=dict)
    alertmanager_url: str | None = None
    notify_channels: Mapping[str, ChannelConfig] = field(default_factory=dict)
    # Prediction-log model name -> the model store its retrain action promotes into.
    model_stores: Mapping[str, StoreSpec] = field(default_factory=dict)
    # Prediction-log models whose retrained candidates enter shadow instead of being promoted.
    shadow_models: frozenset[str] = frozenset()
    # The environment processes of the run start from (the daemon's own).
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


Executor = Callable[[ActionRun, ActionContext], ActionResult]
