"""Retention, as the daemon runs it every PRUNE_INTERVAL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from aiopsd.daemon.runtime import Runtime
from aiopsd.durations import format_duration
from aiopsd.engine.history import retention_floor
from aiopsd.store.retention import prune, prune_run_dirs

logger = logging.getLogger(__name__)


def prune_pass(rt: Runtime, runs_dir: Path) -> None:
    """Retention: the leader prunes the store; every replica its own run directories."""
    s = rt.settings
    keep = max(s.retention, retention_floor(list(rt.rules_by_name().values()), s.actions.max_per_window))
    now = datetime.now(UTC)
    if rt.is_leader():
        done = prune(rt.store, now, keep)
        if done.total:
            logger.info(
                "retention %s: pruned %d alerts, %d findings, %d decisions, %d runs, %d audit entries "
                "(audit chain now starts at entry %d)",
                format_duration(keep),
                done.alerts,
                done.findings,
                done.decisions,
                done.runs,
                done.audit_entries,
                done.audit_starts_at,
            )
    removed = prune_run_dirs(runs_dir, rt.store, now, keep)
    if removed:
        logger.info("retention: removed %d run directories", removed)
