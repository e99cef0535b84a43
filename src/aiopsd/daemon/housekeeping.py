"""Retention, as the daemon runs it every PRUNE_INTERVAL, and the end of a previous start's runs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from aiopsd.daemon.runtime import Runtime, process_slot
from aiopsd.durations import format_duration
from aiopsd.engine.history import retention_floor
from aiopsd.errors import AiopsdError
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


def interrupt_previous_runs(rt: Runtime, *, replicated: bool) -> None:
    """At start: action runs left running by this daemon's previous start are marked interrupted, not re-run.

    Alone (no ``replicated`` peers), every running run is ours. Among replicas only those of this
    replica's previous start: a restarted container keeps its hostname and PID, so its previous
    life's runs are ours to end; a store error is logged (the leader's orphan detection ends them).
    """
    if not replicated:
        interrupted = rt.store.mark_interrupted(datetime.now(UTC))
        if interrupted:
            logger.warning(
                "%d action runs were running when the daemon last stopped: marked interrupted, not re-run",
                interrupted,
            )
        return
    try:
        interrupted = rt.store.mark_interrupted(datetime.now(UTC), slot=process_slot(), keep=rt.replica)
    except AiopsdError as exc:  # the leader's orphan detection ends them once the store is back
        logger.error("could not mark this replica's previous runs interrupted: %s", exc)
        return
    if interrupted:
        logger.warning(
            "%d action runs were running in this replica's previous start (%s): marked interrupted, not re-run",
            interrupted,
            process_slot(),
        )
