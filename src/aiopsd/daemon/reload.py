"""What a reload (SIGHUP) may change in a running daemon, and its audit entry.

Pure settings arithmetic, so the rule is in one place: every setting applies at once, except
:data:`RESTART_FIELDS`, which are reported (log, status API, ``/metrics``) and take effect at the
next restart. The running process keeps their old values, so it stays self-consistent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiopsd.config import Settings
from aiopsd.errors import AiopsdError
from aiopsd.store import StateStore

logger = logging.getLogger(__name__)

RESTART_FIELDS = (
    "listen",
    "state_url",
    "state_dir",
    "webhook",
    "log_format",
    "prometheus",
    "ha",
    "sharding",
    "actions.concurrency",
    "actions.shutdown_grace",
    "dispatch_interval",
)


def _field(settings: Settings, dotted: str) -> object:
    value: object = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def restart_fields(old: Settings, new: Settings) -> list[str]:
    """The settings that changed but only take effect at the next restart."""
    return [f for f in RESTART_FIELDS if _field(new, f) != _field(old, f)]


def live_settings(old: Settings, new: Settings) -> Settings:
    """``new``, with every field of :data:`RESTART_FIELDS` kept at its running value."""
    top = {f: getattr(old, f) for f in RESTART_FIELDS if "." not in f}
    nested: dict[str, dict[str, object]] = {}
    for f in RESTART_FIELDS:
        if "." in f:
            section, name = f.split(".", 1)
            nested.setdefault(section, {})[name] = _field(old, f)
    live = new.model_copy(update=top)
    return live.model_copy(
        update={section: getattr(new, section).model_copy(update=values) for section, values in nested.items()}
    )


def audit_reload(store: StateStore, *, ok: bool, detail: str, rules: list[str] | None = None) -> None:
    """One ``config_reload`` audit entry; an audit write that fails is logged, never raised."""
    try:
        store.audit("config_reload", datetime.now(UTC), {"ok": ok, "detail": detail, "rules": rules or []})
    except AiopsdError as exc:
        logger.error("could not write the config reload to the audit log: %s", exc)
