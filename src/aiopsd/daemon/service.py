"""``aiopsd run``: wire config, store, scheduler, watchers, dispatcher and the HTTP server."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

import uvicorn
from apscheduler.events import (
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers.background import BackgroundScheduler

from aiopsd.config import Settings, load_settings
from aiopsd.daemon.api import create_app
from aiopsd.daemon.auth import load_credentials
from aiopsd.daemon.dispatcher import Dispatcher
from aiopsd.daemon.drift_watcher import DriftWatcher
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.runtime import Runtime
from aiopsd.daemon.watcher import Watcher
from aiopsd.engine import load_rules
from aiopsd.errors import AiopsdError
from aiopsd.sources.prometheus import PrometheusSource
from aiopsd.store import StateStore

logger = logging.getLogger(__name__)


class Daemon:
    def __init__(self, settings: Settings, config_path: str | None = None) -> None:
        self.config_path = config_path
        self.settings = settings
        rules = load_rules(settings.rules_dir, settings.playbooks_dir)
        self.credentials = load_credentials(settings.webhook.auth)
        if settings.host not in ("127.0.0.1", "localhost", "::1") and not self.credentials.required:
            raise AiopsdError(f"refusing to listen on {settings.listen} without webhook auth: set "
                              "webhook.auth (bearer_token_file or basic_username + basic_password_file) "
                              "or listen on 127.0.0.1")
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        store = StateStore(settings.state_url)
        self.runtime = Runtime(settings=settings, rules=rules, store=store, metrics=Metrics())
        self.runtime.set_rules(rules)
        self.dispatcher = Dispatcher(self.runtime)
        self.source = PrometheusSource(settings.prometheus)
        self.watchers = [Watcher(w, settings.prometheus, self.source, store, self.runtime.metrics)
                         for w in settings.watches]
        self.drift_watchers = [DriftWatcher(p, store, self.runtime.metrics, settings.state_dir)
                               for p in settings.prediction_logs]
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": SchedulerPool(max_workers=4 + len(self.watchers) + len(self.drift_watchers))},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30})
        self.server: uvicorn.Server | None = None

    def _schedule(self) -> None:
        s = self.scheduler
        for w in self.watchers:
            s.add_job(self._timed, "interval", args=[f"poll:{w.watch.name}", w.poll],
                      seconds=w.watch.interval, id=f"poll:{w.watch.name}", next_run_time=datetime.now(UTC))
        for d in self.drift_watchers:
            s.add_job(self._timed, "interval", args=[f"drift:{d.cfg.model}", d.poll],
                      seconds=d.cfg.interval, id=f"drift:{d.cfg.model}", next_run_time=datetime.now(UTC))
        s.add_job(self._timed, "interval", args=["dispatch", self.dispatcher.tick],
                  seconds=self.settings.dispatch_interval, id="dispatch", next_run_time=datetime.now(UTC))
        s.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_SUBMITTED)

    @staticmethod
    def _timed(name: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:  # one failing poll must not stop the schedule
            logger.exception("scheduled job %s failed", name)

    def _on_event(self, event: JobEvent) -> None:
        m = self.runtime.metrics
        if isinstance(event, JobSubmissionEvent) and event.scheduled_run_times:
            lag = (datetime.now(UTC) - event.scheduled_run_times[-1]).total_seconds()
            m.scheduler_lag.labels(event.job_id).set(max(0.0, lag))
        elif isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_MISSED:
            m.scheduler_misfires.labels(event.job_id).inc()

    def run(self) -> int:
        rt, s = self.runtime, self.settings
        interrupted = rt.store.mark_interrupted(datetime.now(UTC))
        if interrupted:
            logger.warning("%d action runs were running when the daemon last stopped: marked interrupted, "
                           "not re-run", interrupted)
        app = create_app(rt, self.credentials)
        config = uvicorn.Config(app, host=s.host, port=s.port, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self._schedule()
        self.scheduler.start()
        rt.ready.set()
        logger.info("aiopsd listening on http://%s:%d (state %s, %d watches, %d rules)", s.host, s.port,
                    rt.store.safe_url, len(self.watchers), len(rt.rules))
        signal.signal(signal.SIGHUP, self._on_hup)
        try:
            self.server.run()
        finally:
            self.stop()
        return 0

    def _on_hup(self, _sig: int, _frame: FrameType | None) -> None:
        threading.Thread(target=self.reload, name="reload", daemon=True).start()

    def reload(self) -> bool:
        """Re-read config and rules atomically; an invalid file keeps the running set."""
        rt = self.runtime
        try:
            settings = load_settings(self.config_path) if self.config_path else self.settings
            rules = load_rules(settings.rules_dir, settings.playbooks_dir)
        except AiopsdError as exc:
            rt.last_reload_error = str(exc)
            rt.metrics.config_reload.labels("error").inc()
            rt.metrics.config_valid.set(0)
            logger.error("reload rejected, keeping the running rules: %s", exc)
            self._audit_reload(ok=False, detail=str(exc))
            return False
        rt.set_rules(rules)
        self._audit_reload(ok=True, detail=f"{len(rules)} rules", rules=[r.name for r in rules])
        rt.last_reload_error = ""
        rt.metrics.config_reload.labels("ok").inc()
        rt.metrics.config_valid.set(1)
        logger.info("reloaded: %d rules", len(rules))
        return True

    def _audit_reload(self, *, ok: bool, detail: str, rules: list[str] | None = None) -> None:
        try:
            self.runtime.store.audit("config_reload", datetime.now(UTC),
                                     {"ok": ok, "detail": detail, "rules": rules or []})
        except AiopsdError as exc:
            logger.error("could not write the config reload to the audit log: %s", exc)

    def stop(self) -> None:
        rt = self.runtime
        rt.draining.set()
        logger.info("stopping: no new webhooks or actions; waiting up to %.0fs for running actions",
                    self.settings.actions.shutdown_grace)
        try:
            self.scheduler.shutdown(wait=True)
        except Exception:  # already stopped
            logger.debug("scheduler shutdown", exc_info=True)
        self.dispatcher.shutdown(self.settings.actions.shutdown_grace)
        rt.store.close()
        logger.info("aiopsd stopped after %.0fs", time.time() - rt.started_at)


def run_daemon(settings: Settings, config_path: str | None = None) -> int:
    return Daemon(settings, config_path).run()
