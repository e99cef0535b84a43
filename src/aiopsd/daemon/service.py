"""``aiopsd run``: wire config, store, scheduler, sources, dispatcher and the HTTP server."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType

import uvicorn
from apscheduler.events import JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers.background import BackgroundScheduler

from aiopsd.config import Settings, load_settings
from aiopsd.daemon.dispatcher import Dispatcher
from aiopsd.daemon.housekeeping import interrupt_previous_runs, prune_pass
from aiopsd.daemon.http.api import create_app
from aiopsd.daemon.http.auth import load_approval_credentials, load_credentials
from aiopsd.daemon.http.server import DrainingServer
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.reload import audit_reload, live_settings, restart_fields
from aiopsd.daemon.remote_write import RemoteWriter
from aiopsd.daemon.runner import SourceKey, SourceRunner, SourceSet
from aiopsd.daemon.runtime import Runtime
from aiopsd.daemon.scheduling import SCHEDULER_EVENTS, record_event
from aiopsd.daemon.shards import poll_now, shard_keeper
from aiopsd.daemon.systemd import Notifier
from aiopsd.engine import load_rules
from aiopsd.errors import AiopsdError
from aiopsd.models import SourceKind
from aiopsd.sources.base import SourceEnv
from aiopsd.sources.registry import source_specs
from aiopsd.store import StateStore
from aiopsd.store.ha import Membership
from aiopsd.store.retention import PRUNE_INTERVAL

logger = logging.getLogger(__name__)


SWITCH_INTERVAL = 0.001


def _job(key: SourceKey) -> str:
    return f"poll:{key[1]}"


class Daemon:
    def __init__(self, settings: Settings, config_path: str | None = None) -> None:
        self.config_path = config_path
        self.settings = settings
        rules = load_rules(settings.rules_dir, settings.playbooks_dir, settings.notify_channels)
        self.credentials = load_credentials(settings.webhook.auth)
        self.approval_credentials = load_approval_credentials(settings)
        if settings.host not in ("127.0.0.1", "localhost", "::1") and not self.credentials.required:
            raise AiopsdError(
                f"refusing to listen on {settings.listen} without webhook auth: set "
                "webhook.auth (bearer_token_file or basic_username + basic_password_file) "
                "or listen on 127.0.0.1"
            )
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        store = StateStore(settings.state_url)
        self.runtime = Runtime(settings=settings, rules=rules, store=store, metrics=Metrics())
        self.runtime.set_rules(rules)
        self.dispatcher = Dispatcher(self.runtime)
        # Its thread starts with the first point a remote_write watch pushes.
        self.remote_write = RemoteWriter(
            settings.prometheus.remote_write, settings.prometheus.remote_write_url, self.runtime.metrics
        )
        self.shard_keeper = shard_keeper(self.runtime, on_gain=self._poll_watches_now)
        env = SourceEnv(
            store=store, metrics=self.runtime.metrics, push=self.remote_write, shard_owner=self.shard_keeper
        )
        self.sources = SourceSet(
            source_specs(settings),
            env,
            SourceRunner(store, self.runtime.metrics),
        )
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": SchedulerPool(max_workers=4 + len(self.sources))},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30},
        )
        self.server: DrainingServer | None = None
        self.notifier = Notifier()
        self.membership = (
            Membership(store, self.runtime.replica, settings.ha.lease_ttl) if store.dialect == "postgresql" else None
        )
        self._last_dispatch = time.monotonic()
        self._stopped = threading.Event()
        self._reload_lock = threading.Lock()

    def _schedule(self) -> None:
        s = self.scheduler
        for key in self.sources:
            self._add_poll(key)
        s.add_job(
            self._timed,
            "interval",
            args=["dispatch", self._dispatch],
            seconds=self.settings.dispatch_interval,
            id="dispatch",
            next_run_time=datetime.now(UTC),
        )
        s.add_job(
            self._timed,
            "interval",
            args=["prune", self._prune],
            seconds=PRUNE_INTERVAL,
            id="prune",
            next_run_time=datetime.now(UTC) + timedelta(seconds=60),
        )
        if self.membership is not None:
            s.add_job(
                self._timed, "interval", args=["lease", self._lease], seconds=self.settings.ha.lease_ttl / 3, id="lease"
            )
        if (keeper := self.shard_keeper) is not None:
            s.add_job(self._timed, "interval", args=["shards", keeper.renew], seconds=keeper.period, id="shards")
        if self.notifier.watchdog_interval:
            s.add_job(
                self._timed,
                "interval",
                args=["watchdog", self._watchdog],
                seconds=self.notifier.watchdog_interval,
                id="watchdog",
                next_run_time=datetime.now(UTC),
            )
        s.add_listener(self._on_event, SCHEDULER_EVENTS)

    def _add_poll(self, key: SourceKey) -> None:
        """Every source is scheduled alike: every ``interval``, leader-only where the source says so."""
        self.scheduler.add_job(
            self._timed,
            "interval",
            args=[_job(key), partial(self._poll, key)],
            seconds=self.sources[key].interval,
            id=_job(key),
            next_run_time=datetime.now(UTC),
        )

    def _poll_watches_now(self) -> None:
        poll_now(self.scheduler, [_job(k) for k in self.sources if k[0] == SourceKind.PROMETHEUS])

    def _poll(self, key: SourceKey) -> None:
        """One poll; once more at once if this replica gained shards meanwhile (a takeover waits no interval)."""
        gains = -1 if (keeper := self.shard_keeper) is None or key[0] != SourceKind.PROMETHEUS else keeper.gains
        self.sources.poll(key, leader=self.runtime.is_leader())
        if keeper is not None and gains not in (-1, keeper.gains):
            self.sources.poll(key, leader=self.runtime.is_leader())

    def _resync_sources(self) -> None:
        """Becoming leader: drop what this replica remembers of the sources, read it back from the store.

        Another replica may have polled meanwhile; its cursors, watermarks and open episodes
        are what this replica continues from (never its own older memory of them).
        """
        with self._reload_lock:  # a reload swaps the same sources
            self.sources.rebuild_leader_only()

    @staticmethod
    def _timed(name: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:  # one failing poll must not stop the schedule
            logger.exception("scheduled job %s failed", name)

    def _dispatch(self) -> None:
        self.dispatcher.tick()
        self._last_dispatch = time.monotonic()

    def _watchdog(self) -> None:
        """Ping systemd only while the dispatch loop is turning: a stuck scheduler stops the pings."""
        interval = self.notifier.watchdog_interval or 0.0
        if time.monotonic() - self._last_dispatch <= 2 * interval + 2 * self.settings.dispatch_interval:
            self.notifier.watchdog()
        else:
            logger.error(
                "dispatch loop last ran %.0fs ago: not pinging the systemd watchdog",
                time.monotonic() - self._last_dispatch,
            )

    def _prune(self) -> None:
        prune_pass(self.runtime, self.dispatcher.runs_dir)

    def _lease(self) -> None:
        """Heartbeat and leader lease (PostgreSQL); the leader also interrupts dead replicas' runs."""
        assert self.membership is not None
        rt = self.runtime
        started = time.monotonic()
        try:
            state = self.membership.renew()
        except AiopsdError as exc:
            # Cannot renew: stop leading when our lease would have expired anyway.
            logger.error("lease renewal failed: %s", exc)
            return
        if state.leader:
            if state.changed:
                self._resync_sources()  # before polls may run here (they check is_leader)
            rt.leader_until = started + self.settings.ha.lease_ttl
        else:
            rt.leader_until = 0.0
        rt.metrics.leader.set(1 if state.leader else 0)
        if state.changed:
            if state.leader:
                logger.warning(
                    "this replica (%s) is now the leader: decisions (and unsharded polls) run here", rt.replica
                )
                self.notifier.status(self._status_line())
            else:
                logger.info("leader is %s; this replica accepts webhooks and executes claimed runs", state.holder)
        if state.leader:
            for run_id, owner in self.membership.interrupt_orphans():
                logger.warning(
                    "action %d was running on %s, which stopped answering: marked interrupted, not re-run",
                    run_id,
                    owner,
                )

    def _on_event(self, event: JobEvent) -> None:
        record_event(self.runtime.metrics, event)

    def _status_line(self) -> str:
        rt = self.runtime
        role = "" if self.membership is None else (" leader," if rt.is_leader() else " follower,")
        note = f"; reload rejected: {rt.last_reload_error}" if rt.last_reload_error else ""
        if rt.restart_needed:
            note += f"; restart needed for: {', '.join(rt.restart_needed)}"
        return (
            f"serving on {self.settings.listen},{role} {len(rt.rules)} rules, "
            f"{len(self.sources.of(SourceKind.PROMETHEUS))} watches{note}"
        )[:400]

    def run(self) -> int:
        rt, s = self.runtime, self.settings
        # A large poll is pure Python for seconds; every query and socket call of an API request
        # gives the GIL back and waits up to the switch interval to get it again. 1 ms instead of
        # 5 ms cut the 95th percentile of 30 SQLite calls next to a CPU-bound thread from 28 ms to
        # 0.2 ms in a micro-benchmark; bench/scale.py measures /api/v1/status during polls.
        sys.setswitchinterval(SWITCH_INTERVAL)
        interrupt_previous_runs(rt, replicated=self.membership is not None)
        if self.membership is not None:
            rt.leader_until = 0.0
            self._lease()
            if self.shard_keeper is not None:
                self.shard_keeper.renew()  # the first polls score this replica's share at once
        app = create_app(rt, self.credentials, self.approval_credentials)
        # uvicorn's own loggers propagate to ours (text or JSON); no handlers of its own.
        config = uvicorn.Config(
            app,
            host=s.host,
            port=s.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            log_config=None,
        )
        self.server = DrainingServer(config)
        self.server.on_exit = self._drain
        self._schedule()
        self.scheduler.start()
        signal.signal(signal.SIGHUP, self._on_hup)
        threading.Thread(target=self._announce_ready, name="ready", daemon=True).start()
        try:
            self.server.run()
        finally:
            self.stop()
        return 0

    def _announce_ready(self) -> None:
        """READY=1 once the HTTP socket is bound and serving, not before."""
        server = self.server
        assert server is not None
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.should_exit:
            return
        rt, s = self.runtime, self.settings
        rt.ready.set()
        logger.info(
            "aiopsd listening on http://%s:%d (state %s, %d watches, %d rules)",
            s.host,
            s.port,
            rt.store.safe_url,
            len(self.sources.of(SourceKind.PROMETHEUS)),
            len(rt.rules),
        )
        self.notifier.ready(self._status_line())

    def _on_hup(self, _sig: int, _frame: FrameType | None) -> None:
        threading.Thread(target=self.reload, name="reload", daemon=True).start()

    def reload(self) -> bool:
        """Re-read config and rules atomically; an invalid file keeps the running set.

        Applied at once: rules, watches, prediction_logs, log level, playbook_vars, dry_run and the other
        settings read per use. Settings in RESTART_FIELDS are reported, not applied.
        """
        rt = self.runtime
        self.notifier.reloading()
        with self._reload_lock:
            try:
                settings = load_settings(self.config_path) if self.config_path else self.settings
                rules = load_rules(settings.rules_dir, settings.playbooks_dir, settings.notify_channels)
            except AiopsdError as exc:
                rt.last_reload_error = str(exc)
                rt.metrics.config_reload.labels("error").inc()
                rt.metrics.config_valid.set(0)
                logger.error("reload rejected, keeping the running config and rules: %s", exc)
                self._audit_reload(ok=False, detail=str(exc))
                self.notifier.reloaded(self._status_line())
                return False
            old = self.settings
            restart = restart_fields(old, settings)
            live = live_settings(old, settings)
            self.settings = live
            self._apply_sources()
            rt.settings = live
            rt.set_rules(rules)
            self._audit_reload(ok=True, detail=f"{len(rules)} rules", rules=[r.name for r in rules])
            logging.getLogger().setLevel(live.log_level)
            rt.last_reload_error = ""
            rt.restart_needed = restart
            rt.metrics.config_reload.labels("ok").inc()
            rt.metrics.config_valid.set(1)
            rt.metrics.restart_needed.set(1 if restart else 0)
        if restart:
            logger.warning(
                "reloaded, but these settings changed and need a restart to take effect: %s", ", ".join(restart)
            )
        logger.info("reloaded: %d rules, %d watches, log level %s", len(rules), len(live.watches), live.log_level)
        self.notifier.reloaded(self._status_line())
        return True

    def _audit_reload(self, *, ok: bool, detail: str, rules: list[str] | None = None) -> None:
        audit_reload(self.runtime.store, ok=ok, detail=detail, rules=rules)

    def _apply_sources(self) -> None:
        """Keep every source whose (kind, name, config) is unchanged; restart the changed ones from their
        stored cursor, start the added ones, stop the removed ones."""
        stopped, started = self.sources.apply(source_specs(self.settings))
        for key in stopped:
            try:
                self.scheduler.remove_job(_job(key))
            except Exception:  # not scheduled (yet)
                logger.debug("no job for %s source %s", *key)
        if self.scheduler.running:
            for key in started:
                self._add_poll(key)

    def _drain(self) -> None:
        """SIGTERM: 503 on the webhook at once, let actions finish up to the deadline, then exit."""
        rt = self.runtime
        rt.draining.set()
        grace = self.settings.actions.shutdown_grace
        self.notifier.stopping(f"draining: waiting up to {grace:g}s for running actions")
        logger.info("stopping: webhook answers 503, no new actions; waiting up to %.0fs for running actions", grace)
        self.dispatcher.shutdown(grace)
        if self.server is not None:
            self.server.should_exit = True

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        rt = self.runtime
        if not rt.draining.is_set():
            self._drain()
        try:
            self.scheduler.shutdown(wait=True)
        except Exception:  # already stopped
            logger.debug("scheduler shutdown", exc_info=True)
        self.dispatcher.shutdown(0)
        self.remote_write.stop()
        for leases in [x for x in (self.shard_keeper, self.membership) if x is not None]:
            try:
                leases.leave()
            except AiopsdError as exc:
                logger.warning("could not hand back the leader or shard leases: %s", exc)
        rt.store.close()
        logger.info("aiopsd stopped after %.0fs", time.time() - rt.started_at)


def run_daemon(settings: Settings, config_path: str | None = None) -> int:
    return Daemon(settings, config_path).run()
