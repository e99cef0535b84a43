"""Notify channels: one config model (with its ``send``) per kind, and one registry.

A new channel is one file with a :class:`ChannelConfig` subclass plus one entry in
:data:`CHANNELS`; the config union below and the error text are derived from it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from aiopsd.actions.base import ActionContext, ActionResult
from aiopsd.actions.notify.base import ChannelConfig, Delivery, Notification
from aiopsd.actions.notify.email import EmailChannel
from aiopsd.actions.notify.pagerduty import PagerDutyChannel
from aiopsd.actions.notify.slack import SlackChannel
from aiopsd.actions.notify.webhook import WebhookChannel
from aiopsd.models import ActionRun, RunStatus

logger = logging.getLogger(__name__)

CHANNELS: dict[str, type[ChannelConfig]] = {
    "webhook": WebhookChannel,
    "slack": SlackChannel,
    "pagerduty": PagerDutyChannel,
    "email": EmailChannel,
}

if TYPE_CHECKING:
    AnyChannel = ChannelConfig
else:
    AnyChannel = Annotated[Union[tuple(CHANNELS.values())], Field(discriminator="kind")]  # noqa: UP007

__all__ = [
    "CHANNELS",
    "AnyChannel",
    "ChannelConfig",
    "Delivery",
    "Notification",
    "execute_notify",
    "notification",
    "send_notify",
]


def notification(run: ActionRun) -> Notification:
    """The run's rendered notify parameters as a :class:`Notification` (nothing is rendered here)."""
    params: dict[str, Any] = dict(run.action.get("notify") or {})
    try:
        finding = json.loads(params.get("finding_data") or "{}")
    except ValueError:
        finding = {}
    return Notification(
        rule=run.rule,
        title=str(params.get("title") or f"aiopsd rule {run.rule}"),
        message=str(params.get("message", "")),
        event=params.get("event", "trigger"),
        severity=params.get("severity", "warning"),
        dedup_key=str(params.get("dedup_key") or ""),
        finding=finding if isinstance(finding, dict) else {},
        run_id=run.id,
    )


def execute_notify(run: ActionRun, ctx: ActionContext) -> ActionResult:
    """The notify executor: deliver the run to its channel within the run's timeout."""
    return send_notify(run, ctx.notify_channels, ctx.cancel, ctx.timeout)


def send_notify(
    run: ActionRun, channels: Mapping[str, ChannelConfig], cancel: threading.Event, timeout: float | None = None
) -> ActionResult:
    """Deliver a notify run to its channel within ``timeout`` (the run's); without a channel, only log it."""
    note = notification(run)
    name = (run.action.get("notify") or {}).get("channel")
    if not name:
        logger.warning("notify (rule %s): %s", run.rule, note.message)
        return ActionResult(RunStatus.SUCCEEDED, 0, note.message)
    channel = channels.get(str(name))
    if channel is None:
        return ActionResult(
            RunStatus.FAILED, None, "", f"notify channel {name!r} is not configured (notify_channels in the config)"
        )
    if run.dry_run:
        return ActionResult(
            RunStatus.SUCCEEDED,
            0,
            f"dry run: would notify {name} ({channel.describe()}): {note.event} {note.title}: {note.message}",
        )
    delivery = channel.send(note, cancel, None if timeout is None else time.monotonic() + timeout)
    what = f"notify {name} ({channel.describe()}), {note.event}"
    if delivery.ok:
        return ActionResult(
            RunStatus.SUCCEEDED, 0, f"{what}: delivered in {delivery.attempts} attempt(s): {delivery.detail}"
        )
    logger.error("%s failed: %s", what, delivery.detail)
    return ActionResult(RunStatus.FAILED, None, f"{what}: not delivered", f"{what}: {delivery.detail}")
