"""The dispatch loop: findings -> engine -> decisions -> action runs on a bounded worker pool."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiopsd.actions.base import ActionResult
from aiopsd.actions.executors import context_for, execute
from aiopsd.daemon.planned_work import PlannedWork
from aiopsd.daemon.runtime import Runtime
from aiopsd.daemon.verifier import Verifier
from aiopsd.engine import evaluate
from aiopsd.engine.history import engine_state
from aiopsd.errors import AiopsdError, StoreUnavailableError
from aiopsd.models import ActionRun, Outcome, RunStatus
from aiopsd.store import Claim

logger = logging.getLogger(__name__)

# Storing a finished action's result is retried with this backoff (seconds) until it succeeds.
STORE_RETRY_FIRST = 0.5
STORE_RETRY_MAX = 10.0
# After the shutdown deadline, how long canceled actions get to end and store their results.
STORE_GIVE_UP = 30.0


class Dispatcher:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        s = runtime.settings
        self.pool = ThreadPoolExecutor(max_workers=s.actions.concurrency, thread_name_prefix="action")
        self.running: dict[int, tuple[threading.Event, Future[None], ActionRun]] = {}
        self._lock = threading.Lock()
        self.runs_dir = Path(s.state_dir) / "runs"
        self.planned = PlannedWork()
        self.verifier = Verifier(runtime)
        # Set when shutdown stops waiting: a result still failing to store is then given up.
        self._give_up = threading.Event()

    # -------------------------------------------------------------- one tick
    def tick(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        if self.rt.draining.is_set():
            return
        try:
            if self.rt.is_leader():  # with several replicas only the leader decides and verifies; all execute
                self.verifier.tick(now)
                self.decide(now)
            self.start_due(now)
        except StoreUnavailableError as exc:
            logger.error("dispatch skipped: %s", exc)
        self.rt.metrics.last_tick.set(time.time())

    def decide(self, now: datetime) -> None:
        store, rules = self.rt.store, list(self.rt.rules_by_name().values())
        if not rules:
            return
        store.expire_alert_findings(now, self.rt.settings.alerts.max_age)
        findings = store.active_findings()
        if any(r.on_resolved is not None or r.on_not_verified is not None for r in rules):
            findings += store.recently_resolved(now)
        if not findings:
            return
        down = {s["name"]: s["error"] or "not answering" for s in store.list_sources() if not s["up"]}
        state = engine_state(
            store,
            rules,
            now,
            sources_down=down,
            global_dry_run=self.rt.settings.actions.dry_run,
            global_budget=self.rt.settings.actions.max_per_window,
        )
        state = self.planned.apply(self.rt.settings, state, store, now)  # maintenance windows and silences
        decisions = evaluate(findings, rules, state, now)
        if not decisions:
            return
        # What the store recorded, not what the engine proposed: an act whose finding resolved
        # meanwhile is counted and logged as the resolved_before_act skip it became.
        for d in store.record_decisions(decisions, self.rt.rules_by_name()):
            self.rt.metrics.decisions.labels(str(d.outcome), d.code).inc()
            log = logger.info if d.outcome == Outcome.ACT else logger.warning
            log("rule %s on finding %s: %s: %s", d.rule, d.finding_id, d.outcome, d.reason)

    def start_due(self, now: datetime) -> None:
        with self._lock:
            free = self.rt.settings.actions.concurrency - len(self.running)
            busy = frozenset(t for _, _, run in self.running.values() for t in run.targets)
        if free <= 0:
            return
        limits = {
            r.name: r.guards.concurrency for r in self.rt.rules_by_name().values() if r.guards.concurrency is not None
        }
        claimed = self.rt.store.claim_runnable(
            now, limit=free, owner=self.rt.replica, busy_targets=busy, rule_limits=limits
        )
        for claim in claimed:
            cancel = threading.Event()
            with self._lock:
                fut = self.pool.submit(self._execute, claim, cancel)
                self.running[claim.run.id] = (cancel, fut, claim.run)
            self.rt.metrics.runs_active.set(len(self.running))

    # ------------------------------------------------------------ one action
    def _execute(self, claim: Claim, cancel: threading.Event) -> None:
        run = claim.run
        started = time.monotonic()
        private = self.runs_dir / f"{run.id:06d}-{run.attempt}"
        try:
            logger.info(
                "action %d (%s, rule %s) starting on %s, attempt %d",
                run.id,
                run.kind,
                run.rule,
                ",".join(run.targets) or "-",
                run.attempt,
            )
            ctx = context_for(self.rt.settings, private_dir=private, timeout=claim.timeout, cancel=cancel)
            result = execute(run, ctx)
        except AiopsdError as exc:
            result = ActionResult(RunStatus.FAILED, None, "", str(exc))
        except Exception as exc:  # an action bug must not kill the worker or leave the run "running"
            logger.exception("action %d crashed", run.id)

            result = ActionResult(RunStatus.FAILED, None, "", f"internal error: {exc!r}")
        try:
            self._store_result(claim, result, cancel, started)
        finally:
            with self._lock:
                self.running.pop(run.id, None)
                self.rt.metrics.runs_active.set(len(self.running))

    def _store_result(self, claim: Claim, result: ActionResult, cancel: threading.Event, started: float) -> None:
        """Record the result, retrying until the store takes it (full disk, failover, outage).

        Until then the run keeps its slot and target lock here, as it still shows ``running``
        in the store; the failure is logged and counted. Only a shutdown that outlasts its
        deadline gives up, and the run is then marked ``interrupted`` by the next start
        (or by the leader once this replica's heartbeat is gone).
        """
        run, m = claim.run, self.rt.metrics
        now = datetime.now(UTC)
        retry = result.status == RunStatus.FAILED and run.attempt < claim.max_attempts and not cancel.is_set()
        delay, failures = STORE_RETRY_FIRST, 0
        while True:
            try:
                if retry:
                    backoff = claim.retry_backoff * (2 ** (run.attempt - 1))
                    stored = self.rt.store.retry_run(
                        run.id,
                        not_before=now + timedelta(seconds=backoff),
                        output=result.output,
                        error=result.error,
                        owner=self.rt.replica,
                    )
                    if stored:
                        logger.warning("action %d failed (%s); retrying in %.0fs", run.id, result.error, backoff)
                else:
                    stored = self.rt.store.finish_run(
                        run.id,
                        result.status,
                        finished_at=now,
                        rc=result.rc,
                        output=result.output,
                        error=result.error,
                        artifact_dir=result.artifact_dir,
                        owner=self.rt.replica,
                    )
                    if stored:
                        m.runs.labels(run.kind, str(result.status)).inc()
                        m.run_duration.labels(run.kind).observe(time.monotonic() - started)
                        logger.info(
                            "action %d %s%s", run.id, result.status, f": {result.error}" if result.error else ""
                        )
                break
            except Exception as exc:  # StoreUnavailableError, or a bug: never leave the run "running" silently
                failures += 1
                m.result_store_errors.inc()
                if failures == 1:
                    m.results_unstored.inc()
                logger.error(
                    "action %d finished %s, but its result could not be stored (attempt %d): %s; retrying in %.0fs",
                    run.id,
                    result.status,
                    failures,
                    exc,
                    delay,
                    exc_info=not isinstance(exc, StoreUnavailableError),
                )
                if self._give_up.wait(delay):
                    logger.critical(
                        "action %d finished %s, but shutdown came before its result could be "
                        "stored; the run will show interrupted",
                        run.id,
                        result.status,
                    )
                    return
                delay = min(delay * 2, STORE_RETRY_MAX)
        if failures:
            m.results_unstored.dec()
            logger.warning("action %d: result stored after %d failed attempts", run.id, failures)
        if not stored:
            m.results_rejected.inc()
            logger.warning(
                "action %d finished %s, but the store no longer shows it running as this replica's "
                "(marked interrupted meanwhile?): result not recorded, see the audit log",
                run.id,
                result.status,
            )

    # -------------------------------------------------------------- shutdown
    def shutdown(self, grace: float) -> None:
        """Let running actions finish for up to ``grace`` seconds, then cancel them."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._lock:
                if not self.running:
                    break
            time.sleep(0.2)
        with self._lock:
            left = list(self.running.values())
        for cancel, _, run in left:
            logger.warning("shutdown deadline: canceling action %d", run.id)
            cancel.set()
        for _, fut, _ in left:
            try:
                fut.result(timeout=STORE_GIVE_UP)
            except Exception:  # the worker already recorded its result
                logger.debug("worker ended with an error during shutdown", exc_info=True)
        self._give_up.set()
        self.pool.shutdown(wait=True)
