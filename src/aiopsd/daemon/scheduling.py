"""The scheduler's own health on /metrics: how late jobs start, which runs it missed or skipped."""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)

from aiopsd.daemon.metrics import Metrics

# Submitted (its start lag), missed (misfire), and skipped because its previous run is still going.
SCHEDULER_EVENTS = EVENT_JOB_MISSED | EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES


def record_event(m: Metrics, event: JobEvent) -> None:
    """Count one of :data:`SCHEDULER_EVENTS` on the daemon's metrics."""
    if event.code == EVENT_JOB_MAX_INSTANCES:
        # A poll still running when the next is due: that run is skipped (max_instances=1).
        m.scheduler_skipped.labels(event.job_id).inc()
    elif isinstance(event, JobSubmissionEvent) and event.scheduled_run_times:
        lag = (datetime.now(UTC) - event.scheduled_run_times[-1]).total_seconds()
        m.scheduler_lag.labels(event.job_id).set(max(0.0, lag))
    elif isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_MISSED:
        m.scheduler_misfires.labels(event.job_id).inc()
