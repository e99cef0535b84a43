"""StateStore: every stage's durable memory (SQLite by default, PostgreSQL for HA).

Writes that must not be lost (alerts, decisions with their runs) happen in one
transaction each; a failure to commit raises :class:`StoreUnavailableError`, which
the webhook turns into a 503 so Alertmanager retries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, create_engine, event, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from aiopsd.engine.evaluate import EngineState
from aiopsd.engine.rules import RateBudget, Rule
from aiopsd.errors import StoreUnavailableError
from aiopsd.models import (
    ActionRun,
    Decision,
    Finding,
    FindingKind,
    FindingStatus,
    Outcome,
    RunStatus,
    stable_id,
)
from aiopsd.store import alerts as alerts_intake
from aiopsd.store import migrate
from aiopsd.store import tables as t
from aiopsd.store.alerts import AcceptResult, AlertBatch, AlertDelivery
from aiopsd.store.audit import AuditChain, VerifyResult, verify

__all__ = ["AcceptResult", "AlertBatch", "AlertDelivery", "Claim", "StateStore"]

logger = logging.getLogger(__name__)

MAX_SIGHTINGS = 64
# How long after a finding resolves its on_resolved action may still be decided.
RESOLVED_WINDOW = 86400.0
# Arbitrary constant shared by every replica: serialises run claims across replicas.
_CLAIM_LOCK = 0x41_10_95_C1


def ts(dt: datetime) -> float:
    return dt.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class Claim:
    """A run this process now owns, with its execution bounds."""

    run: ActionRun
    timeout: float
    max_attempts: int
    retry_backoff: float


def _sqlite_engine(url: str) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if not memory:
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN IMMEDIATE: a writer takes the lock
        # up front instead of failing on upgrade.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class StateStore:
    """All reads and writes of aiopsd's state. Thread-safe; one instance per process."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.engine = _sqlite_engine(url) if url.startswith("sqlite") else create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=10)
        self.dialect = self.engine.dialect.name
        # Called with ("read" | "write", seconds) after every transaction (the daemon's store latency metric).
        self.observe: Callable[[str, float], None] | None = None
        # One writer at a time inside this process keeps SQLite from busy-waiting on itself.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        if create:
            try:
                migrate.upgrade(self.engine)
            except SQLAlchemyError as exc:
                raise StoreUnavailableError(f"cannot open state store {self.safe_url}: {exc}") from exc

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- plumbing
    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction; any database failure becomes StoreUnavailableError."""
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        started = time.perf_counter()
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(f"state store write failed: {exc.__class__.__name__}: "
                                        f"{str(exc).splitlines()[0]}") from exc
        finally:
            if lock is not None:
                lock.release()
            if self.observe is not None:
                self.observe("write", time.perf_counter() - started)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        started = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(f"state store read failed: {exc.__class__.__name__}") from exc
        finally:
            if self.observe is not None:
                self.observe("read", time.perf_counter() - started)

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table))

    def ping(self) -> bool:
        try:
            with self.read() as conn:
                conn.execute(select(1))
            return True
        except StoreUnavailableError:
            return False

    # ------------------------------------------------------------------- alerts
    def accept_alerts(self, alerts: Sequence[AlertDelivery], *, received_at: float, receiver: str | None,
                      group_key: str | None) -> AcceptResult:
        """Store alerts and their findings in one transaction; duplicates are no-ops."""
        with self.write() as conn:
            return self._accept(conn, alerts, received_at=received_at, receiver=receiver, group_key=group_key)

    def accept_alert_batches(self, batches: Sequence[AlertBatch]) -> list[AcceptResult]:
        """Several webhook requests' alerts in one transaction (group commit): all durable or none."""
        with self.write() as conn:
            return [self._accept(conn, b.alerts, received_at=b.received_at, receiver=b.receiver,
                                 group_key=b.group_key) for b in batches]

    def _accept(self, conn: Connection, alerts: Sequence[AlertDelivery], *, received_at: float,
                receiver: str | None, group_key: str | None) -> AcceptResult:
        return alerts_intake.accept(self, conn, alerts, received_at=received_at, receiver=receiver,
                                    group_key=group_key)

    def expire_alert_findings(self, now: datetime, max_age: float) -> list[str]:
        """Resolve, as ``expired``, alert findings whose resolve never came (see store/alerts.py)."""
        with self.write() as conn:
            return alerts_intake.expire(self, conn, ts(now), max_age)

    # ----------------------------------------------------------------- findings
    def upsert_findings(self, items: Sequence[Finding]) -> None:
        if not items:
            return
        with self.write() as conn:
            audit = AuditChain(conn, self.dialect)
            for f in items:
                self._upsert_finding(conn, audit, f)

    _FINDING_BY_ID = (select(t.findings.c.last_seen, t.findings.c.sightings, t.findings.c.occurrences,
                             t.findings.c.score, t.findings.c.status, t.findings.c.details)
                      .where(t.findings.c.id == bindparam("fid")))

    def _upsert_finding(self, conn: Connection, audit: AuditChain, f: Finding) -> None:
        row = conn.execute(self._FINDING_BY_ID, {"fid": f.id}).first()
        if row is None:
            conn.execute(t.findings.insert(), {
                "id": f.id, "kind": str(f.kind), "source": f.source, "labels": f.labels, "score": f.score,
                "status": str(f.status), "starts_at": ts(f.starts_at), "last_seen": ts(f.last_seen),
                "resolved_at": ts(f.last_seen) if f.status == FindingStatus.RESOLVED else None,
                "resolution": (f.resolution or "recovered") if f.status == FindingStatus.RESOLVED else None,
                "summary": f.summary, "details": f.details, "sightings": list(f.sightings[-MAX_SIGHTINGS:]),
                "occurrences": max(1, len(f.sightings))})
            audit.append("finding_opened", ts(f.last_seen), {
                "finding_id": f.id, "kind": str(f.kind), "source": f.source, "labels": f.labels,
                "status": str(f.status)})
            return
        if row.status == FindingStatus.RESOLVED and f.status == FindingStatus.FIRING:
            return  # a resolved incident stays resolved; a new one gets a new id
        sightings = sorted({*row.sightings, *f.sightings})[-MAX_SIGHTINGS:]
        values: dict[str, Any] = {
            "last_seen": max(row.last_seen, ts(f.last_seen)), "score": max(row.score, f.score),
            "sightings": sightings, "occurrences": row.occurrences + len(set(f.sightings) - set(row.sightings)),
            # Details accumulate (a drift report rendered when the episode opened stays linked).
            "details": {**(row.details or {}), **f.details}, "summary": f.summary, "status": str(f.status)}
        if f.status == FindingStatus.RESOLVED:
            values["resolved_at"] = ts(f.last_seen)
            values["resolution"] = f.resolution or "recovered"
        conn.execute(update(t.findings).where(t.findings.c.id == f.id).values(**values))
        if f.status == FindingStatus.RESOLVED and row.status == FindingStatus.FIRING:
            audit.append("finding_resolved", ts(f.last_seen), {"finding_id": f.id,
                                                               "resolution": f.resolution or "recovered"})
            self._cancel_for_finding(conn, audit, f.id, ts(f.last_seen),
                                     "canceled: the finding resolved before the action started")

    def _resolve(self, conn: Connection, audit: AuditChain, finding_id: str, at: float, *, why: str,
                 resolution: str = "recovered") -> None:
        """Resolve a firing finding and cancel its runs that have not started, in the caller's transaction."""
        res = conn.execute(update(t.findings).where(and_(t.findings.c.id == finding_id,
                                                         t.findings.c.status == str(FindingStatus.FIRING)))
                           .values(status=str(FindingStatus.RESOLVED), resolved_at=at, last_seen=at,
                                   resolution=resolution))
        if res.rowcount != 1:
            return
        audit.append("finding_resolved", at, {"finding_id": finding_id, "resolution": resolution})
        self._cancel_for_finding(conn, audit, finding_id, at,
                                 f"canceled: {why} before the action started")

    def _cancel_for_finding(self, conn: Connection, audit: AuditChain, finding_id: str, at: float,
                            why: str) -> int:
        decisions = select(t.decisions.c.id).where(t.decisions.c.finding_id == finding_id)
        waiting = and_(t.action_runs.c.decision_id.in_(decisions),
                       t.action_runs.c.status.in_([str(RunStatus.PENDING), str(RunStatus.AWAITING_APPROVAL)]))
        ids = [int(r.id) for r in conn.execute(select(t.action_runs.c.id).where(waiting))]
        if not ids:
            return 0
        conn.execute(update(t.action_runs).where(and_(waiting, t.action_runs.c.id.in_(ids))).values(
            status=str(RunStatus.CANCELED), finished_at=at, error=why))
        for run_id in ids:
            audit.append("run_canceled", at, {"run_id": run_id, "finding_id": finding_id, "reason": why})
        return len(ids)

    def resolve_findings(self, ids: Sequence[str], at: datetime) -> None:
        with self.write() as conn:
            audit = AuditChain(conn, self.dialect)
            for fid in ids:
                self._resolve(conn, audit, fid, ts(at), why="the finding resolved")

    @staticmethod
    def _finding(row: Any) -> Finding:
        return Finding(id=row.id, kind=FindingKind(row.kind), source=row.source, labels=row.labels,
                       score=row.score, status=FindingStatus(row.status), starts_at=_dt(row.starts_at),
                       last_seen=_dt(row.last_seen), summary=row.summary or "", details=row.details or {},
                       sightings=tuple(row.sightings or ()), resolution=row.resolution)

    def active_findings(self, kind: FindingKind | None = None, source: str | None = None) -> list[Finding]:
        q = select(t.findings).where(t.findings.c.status == str(FindingStatus.FIRING))
        if kind is not None:
            q = q.where(t.findings.c.kind == str(kind))
        if source is not None:
            q = q.where(t.findings.c.source == source)
        with self.read() as conn:
            return [self._finding(r) for r in conn.execute(q.order_by(t.findings.c.starts_at))]

    def list_findings(self, *, limit: int = 100, status: str | None = None,
                      kind: str | None = None) -> list[Finding]:
        q = select(t.findings).order_by(t.findings.c.last_seen.desc()).limit(limit)
        if status:
            q = q.where(t.findings.c.status == status)
        if kind:
            q = q.where(t.findings.c.kind == kind)
        with self.read() as conn:
            return [self._finding(r) for r in conn.execute(q)]

    def get_finding(self, finding_id: str) -> Finding | None:
        with self.read() as conn:
            row = conn.execute(select(t.findings).where(t.findings.c.id == finding_id)).first()
        return None if row is None else self._finding(row)

    # ---------------------------------------------------------------- decisions
    def recently_resolved(self, now: datetime, within: float = RESOLVED_WINDOW) -> list[Finding]:
        """Findings resolved in the last ``within`` seconds that some rule acted on (for on_resolved)."""
        acted = select(t.decisions.c.finding_id).where(t.decisions.c.code == "act")
        q = (select(t.findings).where(and_(t.findings.c.status == str(FindingStatus.RESOLVED),
                                           t.findings.c.resolved_at >= ts(now) - within,
                                           t.findings.c.id.in_(acted)))
             .order_by(t.findings.c.starts_at))
        with self.read() as conn:
            return [self._finding(r) for r in conn.execute(q)]

    def engine_state(self, rules: Sequence[Rule], now: datetime, *, sources_down: Mapping[str, str],
                     global_dry_run: bool = False, global_budget: RateBudget | None = None) -> EngineState:
        """Snapshot of what the engine needs about the past, for the given rules."""
        names = [r.name for r in rules]
        horizon = ts(now) - max([r.guards.cooldown for r in rules] +
                                [r.guards.max_per_window.window for r in rules if r.guards.max_per_window] +
                                [0.0])
        decided: set[tuple[str, str, str]] = set()
        started: set[tuple[str, str]] = set()
        last_action: dict[tuple[str, str], datetime] = {}
        recent: dict[str, list[datetime]] = {}
        global_recent: list[datetime] = []
        with self.read() as conn:
            relevant = select(t.findings.c.id).where(or_(
                t.findings.c.status == str(FindingStatus.FIRING),
                t.findings.c.resolved_at >= ts(now) - RESOLVED_WINDOW))
            for r in conn.execute(select(t.decisions.c.rule, t.decisions.c.finding_id, t.decisions.c.code)
                                  .where(t.decisions.c.finding_id.in_(relevant))):
                decided.add((r.rule, r.finding_id, r.code))
            for row in conn.execute(select(t.decisions.c.rule, t.decisions.c.finding_id)
                                    .join(t.action_runs, t.action_runs.c.decision_id == t.decisions.c.id)
                                  .where(and_(t.decisions.c.finding_id.in_(relevant),
                                              t.decisions.c.code == "act",
                                              t.action_runs.c.started_at.is_not(None)))):
                started.add((row.rule, row.finding_id))
            if global_budget is not None:
                global_recent = [_dt(x) for x in conn.execute(
                    select(t.decisions.c.decided_at).where(and_(
                        t.decisions.c.outcome == str(Outcome.ACT),
                        t.decisions.c.decided_at >= ts(now) - global_budget.window))).scalars()]
            acts = conn.execute(select(t.decisions.c.rule, t.decisions.c.targets, t.decisions.c.decided_at)
                                .where(and_(t.decisions.c.outcome == str(Outcome.ACT),
                                            t.decisions.c.rule.in_(names),
                                            t.decisions.c.decided_at >= horizon)))
            for r in acts:
                when = _dt(r.decided_at)
                recent.setdefault(r.rule, []).append(when)
                for target in r.targets or ["*"]:
                    key = (r.rule, target)
                    if key not in last_action or last_action[key] < when:
                        last_action[key] = when
            circuits = self._open_circuits(conn, rules, now)
        return EngineState(decided=frozenset(decided), last_action=last_action, recent_actions=recent,
                           open_circuits=circuits, sources_down=dict(sources_down),
                           global_dry_run=global_dry_run, global_budget=global_budget,
                           global_recent=global_recent, started=frozenset(started))

    def _open_circuits(self, conn: Connection, rules: Sequence[Rule], now: datetime) -> dict[str, str]:
        out: dict[str, str] = {}
        failed = {str(RunStatus.FAILED), str(RunStatus.TIMED_OUT)}
        resets: dict[str, float] = dict(conn.execute(select(t.circuit_resets.c.rule, t.circuit_resets.c.reset_at)
                                                     ).tuples().all())
        for rule in rules:
            cb = rule.guards.circuit_breaker
            rows = conn.execute(select(t.action_runs.c.status, t.action_runs.c.finished_at)
                                .where(and_(t.action_runs.c.rule == rule.name,
                                            t.action_runs.c.finished_at.is_not(None),
                                            t.action_runs.c.finished_at > resets.get(rule.name, -1.0),
                                            t.action_runs.c.dry_run.is_(False)))
                                .order_by(t.action_runs.c.finished_at.desc()).limit(cb.failures)).all()
            if len(rows) == cb.failures and all(r.status in failed for r in rows):
                last = rows[0].finished_at
                if ts(now) - last < cb.reset_after:
                    out[rule.name] = (f"{cb.failures} consecutive failed runs, last at "
                                      f"{_dt(last):%Y-%m-%d %H:%M:%S}Z; closes "
                                      f"{_dt(last + cb.reset_after):%Y-%m-%d %H:%M:%S}Z or on "
                                      f"`aiopsd circuit reset {rule.name}`")
        return out

    def open_circuits(self, rules: Sequence[Rule], now: datetime) -> dict[str, str]:
        with self.read() as conn:
            return self._open_circuits(conn, rules, now)

    def reset_circuit(self, rule: str, now: datetime, *, by: str) -> None:
        """Close a rule's circuit: failures finished before now no longer count."""
        with self.write() as conn:
            stmt = self._insert(t.circuit_resets).values(rule=rule, reset_at=ts(now), by=by)
            conn.execute(stmt.on_conflict_do_update(index_elements=["rule"],
                                                    set_={"reset_at": ts(now), "by": by}))
            AuditChain(conn, self.dialect).append("circuit_reset", ts(now), {"rule": rule, "by": by})

    # -------------------------------------------------------------------- audit
    def audit(self, kind: str, now: datetime, event: Mapping[str, Any]) -> None:
        """An audit entry for an event that has no row of its own (e.g. a config reload)."""
        with self.write() as conn:
            AuditChain(conn, self.dialect).append(kind, ts(now), event)

    def verify_audit(self) -> VerifyResult:
        with self.read() as conn:
            return verify(conn)

    def audit_entries(self, *, limit: int = 100) -> list[dict[str, Any]]:
        import json

        q = select(t.audit_log).order_by(t.audit_log.c.seq.desc()).limit(limit)
        with self.read() as conn:
            return [{"seq": r.seq, "at": _dt(r.at), "kind": r.kind, "event": json.loads(r.event),
                     "hash": r.hash} for r in conn.execute(q)]

    def record_decisions(self, items: Sequence[Decision], rules: Mapping[str, Rule]) -> list[int]:
        """Record decisions (idempotent by id) and queue one run per new act decision."""
        run_ids: list[int] = []
        if not items:
            return run_ids
        with self.write() as conn:
            audit = AuditChain(conn, self.dialect)
            for item in items:
                d = self._still_firing(conn, item) if item.outcome == Outcome.ACT and item.code == "act" else item
                stmt = self._insert(t.decisions).values(
                    id=d.id, rule=d.rule, finding_id=d.finding_id, outcome=str(d.outcome), code=d.code,
                    reason=d.reason, action_kind=d.action_kind, action=d.action, targets=list(d.targets),
                    dry_run=d.dry_run, require_approval=d.require_approval, decided_at=ts(d.decided_at),
                ).on_conflict_do_nothing(index_elements=["id"])
                if conn.execute(stmt.returning(t.decisions.c.id)).first() is None:
                    continue
                audit.append("decision", ts(d.decided_at), {
                    "decision_id": d.id, "rule": d.rule, "finding_id": d.finding_id, "outcome": str(d.outcome),
                    "code": d.code, "reason": d.reason, "targets": list(d.targets), "dry_run": d.dry_run})
                if d.outcome != Outcome.ACT:
                    continue
                guards = rules[d.rule].guards
                status = RunStatus.AWAITING_APPROVAL if d.require_approval else RunStatus.PENDING
                res = conn.execute(t.action_runs.insert().values(
                    decision_id=d.id, rule=d.rule, kind=d.action_kind or "", targets=list(d.targets),
                    status=str(status), attempt=1, dry_run=d.dry_run, action=d.action,
                    timeout=guards.timeout, max_attempts=1 + guards.retries,
                    retry_backoff=guards.retry_backoff, created_at=ts(d.decided_at),
                    not_before=ts(d.decided_at), output="", error=""))
                key = res.inserted_primary_key
                assert key is not None
                run_ids.append(int(key[0]))
                audit.append("run_created", ts(d.decided_at), {"run_id": int(key[0]), "decision_id": d.id,
                                                               "status": str(status)})
        return run_ids

    def _still_firing(self, conn: Connection, d: Decision) -> Decision:
        """The act decision, or a ``resolved_before_act`` skip when its finding stopped firing after
        the engine read it. Reads the finding in this write transaction (locked on PostgreSQL), so a
        resolve commits either before (no run) or after (its cancel finds the pending run)."""
        q = select(t.findings.c.status, t.findings.c.resolution).where(t.findings.c.id == d.finding_id)
        if self.dialect == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is not None and row.status == str(FindingStatus.FIRING):
            return d
        why = f"resolved ({row.resolution or 'recovered'})" if row is not None else "gone from the store"
        logger.warning("rule %s on finding %s: not acting: the finding %s while the decision was made",
                       d.rule, d.finding_id, why)
        return d.model_copy(update={
            "id": stable_id(d.rule, d.finding_id, "resolved_before_act"), "outcome": Outcome.SKIP,
            "code": "resolved_before_act",
            "reason": f"the finding {why} while this decision was being made: no action"})

    def get_decision(self, decision_id: str) -> Decision | None:
        found = self.list_decisions(limit=1, decision_id=decision_id)
        return found[0] if found else None

    def list_decisions(self, *, limit: int = 100, outcome: str | None = None,
                       finding_id: str | None = None, decision_id: str | None = None) -> list[Decision]:
        q = select(t.decisions).order_by(t.decisions.c.decided_at.desc()).limit(limit)
        if decision_id:
            q = q.where(t.decisions.c.id == decision_id)
        if outcome:
            q = q.where(t.decisions.c.outcome == outcome)
        if finding_id:
            q = q.where(t.decisions.c.finding_id == finding_id)
        with self.read() as conn:
            return [Decision(id=r.id, rule=r.rule, finding_id=r.finding_id, outcome=Outcome(r.outcome),
                             code=r.code, reason=r.reason, action_kind=r.action_kind, action=r.action or {},
                             targets=tuple(r.targets or ()), dry_run=r.dry_run,
                             require_approval=r.require_approval, decided_at=_dt(r.decided_at))
                    for r in conn.execute(q)]

    # --------------------------------------------------------------------- runs
    @staticmethod
    def _run(row: Any) -> ActionRun:
        return ActionRun(id=row.id, decision_id=row.decision_id, rule=row.rule, kind=row.kind,
                         targets=tuple(row.targets or ()), status=RunStatus(row.status), attempt=row.attempt,
                         dry_run=row.dry_run, created_at=_dt(row.created_at), started_at=dt(row.started_at),
                         finished_at=dt(row.finished_at), rc=row.rc, output=row.output or "",
                         error=row.error or "", artifact_dir=row.artifact_dir, action=row.action or {})

    def claim_runnable(self, now: datetime, *, limit: int, owner: str,
                       busy_targets: frozenset[str] = frozenset(),
                       rule_limits: Mapping[str, int] | None = None) -> list[Claim]:
        """Move up to ``limit`` due pending runs to running.

        A run whose targets overlap a running run's targets waits (per-target lock), and so
        does a run whose rule already has ``rule_limits[rule]`` runs running (per-rule concurrency).
        PostgreSQL replicas claim with FOR UPDATE SKIP LOCKED, so each run goes to one.
        """
        if limit <= 0:
            return []
        out: list[Claim] = []
        with self.write() as conn:
            if self.dialect == "postgresql":
                # Replicas claim one at a time, so the per-target lock below sees every claim
                # committed before ours; SKIP LOCKED still passes over rows another writer holds.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK})
            running_targets = set(busy_targets)
            per_rule: dict[str, int] = {}
            for r in conn.execute(select(t.action_runs.c.targets, t.action_runs.c.rule)
                                  .where(t.action_runs.c.status == str(RunStatus.RUNNING))):
                running_targets.update(r.targets or ())
                per_rule[r.rule] = per_rule.get(r.rule, 0) + 1
            audit = AuditChain(conn, self.dialect)
            for row in self._due_runs(conn, now):
                if len(out) >= limit:
                    break
                targets = set(row.targets or ())
                if targets & running_targets:
                    continue
                cap = (rule_limits or {}).get(row.rule)
                if cap is not None and per_rule.get(row.rule, 0) >= cap:
                    continue
                running_targets |= targets
                per_rule[row.rule] = per_rule.get(row.rule, 0) + 1
                conn.execute(update(t.action_runs).where(and_(
                    t.action_runs.c.id == row.id, t.action_runs.c.status == str(RunStatus.PENDING))).values(
                    status=str(RunStatus.RUNNING), started_at=ts(now), owner=owner))
                audit.append("run_started", ts(now), {"run_id": row.id, "rule": row.rule, "attempt": row.attempt,
                                                      "targets": list(targets), "dry_run": row.dry_run,
                                                      "owner": owner})
                claimed = self._run(row).model_copy(update={"status": RunStatus.RUNNING, "started_at": now})
                out.append(Claim(claimed, row.timeout, row.max_attempts, row.retry_backoff))
        return out

    def _due_runs(self, conn: Connection, now: datetime) -> Iterator[Any]:
        """Every due pending run, oldest first, read page by page (keyset on not_before, id).

        The caller stops as soon as it has claimed enough, so a short queue costs one page;
        a long queue of runs whose targets are busy is paged through instead of starving the
        runs behind it (head-of-line blocking).
        """
        c = t.action_runs.c
        base = (select(t.action_runs).where(and_(c.status == str(RunStatus.PENDING), c.not_before <= ts(now)))
                .order_by(c.not_before, c.id))
        after: tuple[float, int] | None = None
        page = 64
        while True:
            q = base if after is None else base.where(or_(
                c.not_before > after[0], and_(c.not_before == after[0], c.id > after[1])))
            q = q.limit(page)
            if self.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True)
            rows = conn.execute(q).all()
            yield from rows
            if len(rows) < page:
                return
            after = (float(rows[-1].not_before), int(rows[-1].id))
            page = min(page * 2, 1024)

    def finish_run(self, run_id: int, status: RunStatus, *, finished_at: datetime, rc: int | None,
                   output: str, error: str = "", artifact_dir: str | None = None,
                   owner: str | None = None) -> bool:
        """Record a run's result if it is still ``running`` (and, given ``owner``, still ours).

        Returns False when the run moved on meanwhile (e.g. marked ``interrupted`` by the leader
        during an outage): the result is then not applied, and the lost race is audited.
        """
        with self.write() as conn:
            stmt = (update(t.action_runs).where(self._owned(run_id, owner)).values(
                status=str(status), finished_at=ts(finished_at), rc=rc, output=output, error=error,
                artifact_dir=artifact_dir).returning(t.action_runs.c.id))
            audit = AuditChain(conn, self.dialect)
            if conn.execute(stmt).first() is None:
                self._audit_lost_race(conn, audit, run_id, owner, ts(finished_at),
                                      {"status": str(status), "rc": rc, "error": error})
                return False
            audit.append("run_finished", ts(finished_at), {
                "run_id": run_id, "status": str(status), "rc": rc, "error": error})
        return True

    def retry_run(self, run_id: int, *, not_before: datetime, output: str, error: str,
                  owner: str | None = None) -> bool:
        """Put a failed attempt back in the queue for a later attempt (guarded like :meth:`finish_run`)."""
        with self.write() as conn:
            stmt = (update(t.action_runs).where(self._owned(run_id, owner)).values(
                status=str(RunStatus.PENDING), attempt=t.action_runs.c.attempt + 1, not_before=ts(not_before),
                output=output, error=error, started_at=None, owner=None).returning(t.action_runs.c.id))
            audit = AuditChain(conn, self.dialect)
            if conn.execute(stmt).first() is None:
                self._audit_lost_race(conn, audit, run_id, owner, time.time(), {"status": "retry", "error": error})
                return False
            audit.append("run_retry", time.time(), {
                "run_id": run_id, "not_before": ts(not_before), "error": error})
        return True

    @staticmethod
    def _owned(run_id: int, owner: str | None) -> Any:
        cond = and_(t.action_runs.c.id == run_id, t.action_runs.c.status == str(RunStatus.RUNNING))
        return cond if owner is None else and_(cond, t.action_runs.c.owner == owner)

    @staticmethod
    def _audit_lost_race(conn: Connection, audit: AuditChain, run_id: int, owner: str | None, at: float,
                         result: Mapping[str, Any]) -> None:
        row = conn.execute(select(t.action_runs.c.status, t.action_runs.c.owner)
                           .where(t.action_runs.c.id == run_id)).first()
        now_status, now_owner = (None, None) if row is None else (row.status, row.owner)
        logger.warning("action %d: result %s not recorded: the run is now %s (owner %s), not running as %s",
                       run_id, result.get("status"), now_status or "gone", now_owner or "-", owner or "any")
        audit.append("run_result_rejected", at, {"run_id": run_id, "by": owner, "result": dict(result),
                                                 "run_status": now_status, "run_owner": now_owner})

    def mark_interrupted(self, now: datetime, *, slot: str | None = None, keep: str | None = None) -> int:
        """Runs left ``running`` by a dead process become ``interrupted`` (never re-run blindly).

        Without ``slot`` (one daemon on its own store) every running run is such a leftover.
        With ``slot`` (``hostname:pid``, several replicas on one database) only the runs of an
        earlier process start in the same slot are: a restarted container's previous life.
        ``keep`` is the caller's own identity, never touched.
        """
        c = t.action_runs.c
        cond = c.status == str(RunStatus.RUNNING)
        if slot is not None:
            cond = and_(cond, or_(c.owner == slot, c.owner.startswith(f"{slot}:", autoescape=True)))
        if keep is not None:
            cond = and_(cond, or_(c.owner.is_(None), c.owner != keep))
        why = "the daemon stopped while this action was running; it was not re-run"
        with self.write() as conn:
            rows = [(int(r.id), r.owner) for r in conn.execute(
                update(t.action_runs).where(cond).values(status=str(RunStatus.INTERRUPTED), finished_at=ts(now),
                                                         error=why).returning(c.id, c.owner))]
            audit = AuditChain(conn, self.dialect)
            for run_id, owner in sorted(rows):
                audit.append("run_interrupted", ts(now), {"run_id": run_id, "owner": owner, "reason": why})
            return len(rows)

    def approve_run(self, run_id: int, now: datetime, *, by: str = "") -> ActionRun | None:
        with self.write() as conn:
            res = conn.execute(update(t.action_runs).where(and_(
                t.action_runs.c.id == run_id, t.action_runs.c.status == str(RunStatus.AWAITING_APPROVAL)))
                .values(status=str(RunStatus.PENDING), not_before=ts(now)))
            if res.rowcount != 1:
                return None
            AuditChain(conn, self.dialect).append("run_approved", ts(now), {"run_id": run_id, "by": by})
        return self.get_run(run_id)

    def cancel_runs_for_finding(self, finding_id: str, now: datetime, why: str) -> int:
        """Cancel runs not yet started for a finding (e.g. the alert resolved)."""
        with self.write() as conn:
            return self._cancel_for_finding(conn, AuditChain(conn, self.dialect), finding_id, ts(now), why)

    def get_run(self, run_id: int) -> ActionRun | None:
        with self.read() as conn:
            row = conn.execute(select(t.action_runs).where(t.action_runs.c.id == run_id)).first()
        return None if row is None else self._run(row)

    def runs_for_decisions(self, decision_ids: Sequence[str]) -> list[ActionRun]:
        if not decision_ids:
            return []
        q = select(t.action_runs).where(t.action_runs.c.decision_id.in_(list(decision_ids)))
        with self.read() as conn:
            return [self._run(r) for r in conn.execute(q.order_by(t.action_runs.c.id))]

    def list_runs(self, *, limit: int = 100, status: str | None = None) -> list[ActionRun]:
        q = select(t.action_runs).order_by(t.action_runs.c.id.desc()).limit(limit)
        if status:
            q = q.where(t.action_runs.c.status == status)
        with self.read() as conn:
            return [self._run(r) for r in conn.execute(q)]

    # ------------------------------------------------------------------ cursors
    def get_cursor(self, name: str) -> dict[str, Any] | None:
        with self.read() as conn:
            value = conn.execute(select(t.cursors.c.value).where(t.cursors.c.name == name)).scalar()
        return dict(value) if value is not None else None

    def list_cursors(self) -> dict[str, dict[str, Any]]:
        with self.read() as conn:
            return {r.name: dict(r.value) for r in conn.execute(select(t.cursors.c.name, t.cursors.c.value))}

    def put_cursor(self, name: str, value: dict[str, Any]) -> None:
        with self.write() as conn:
            stmt = self._insert(t.cursors).values(name=name, value=value, updated_at=time.time())
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                                    set_={"value": value, "updated_at": time.time()}))

    # ------------------------------------------------------------------ sources
    def set_source(self, name: str, kind: str, *, up: bool, now: datetime, error: str = "",
                   lag: float | None = None) -> None:
        values: dict[str, Any] = {"kind": kind, "up": up, "error": error, "lag": lag, "updated_at": ts(now)}
        if up:
            values["last_ok"] = ts(now)
        else:
            values["last_error_at"] = ts(now)
        with self.write() as conn:
            stmt = self._insert(t.sources).values(name=name, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=values))

    def list_sources(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = conn.execute(select(t.sources).order_by(t.sources.c.name)).all()
        return [{"name": r.name, "kind": r.kind, "up": r.up, "last_ok": dt(r.last_ok),
                 "last_error_at": dt(r.last_error_at), "error": r.error, "lag_seconds": r.lag,
                 "updated_at": _dt(r.updated_at)} for r in rows]

    # ------------------------------------------------------------------- counts
    def counts(self) -> dict[str, Any]:
        with self.read() as conn:
            alerts = conn.execute(select(func.count()).select_from(t.alerts)).scalar_one()
            findings: dict[str, int] = dict(conn.execute(select(t.findings.c.status, func.count())
                                         .group_by(t.findings.c.status)).all())
            runs: dict[str, int] = dict(conn.execute(select(t.action_runs.c.status, func.count())
                                     .group_by(t.action_runs.c.status)).all())
            decisions: dict[str, int] = dict(conn.execute(select(t.decisions.c.outcome, func.count())
                                          .group_by(t.decisions.c.outcome)).all())
        return {"alerts": alerts, "findings": findings, "runs": runs, "decisions": decisions}

    def firing_by_kind(self) -> dict[str, int]:
        with self.read() as conn:
            return {str(k): int(n) for k, n in conn.execute(
                select(t.findings.c.kind, func.count()).where(t.findings.c.status == str(FindingStatus.FIRING))
                .group_by(t.findings.c.kind)).all()}

    def list_alerts(self, *, limit: int = 100) -> list[dict[str, Any]]:
        q = select(t.alerts).order_by(t.alerts.c.id.desc()).limit(limit)
        with self.read() as conn:
            return [{"id": r.id, "fingerprint": r.fingerprint, "status": r.status, "starts_at": r.starts_at,
                     "alertname": r.alertname, "labels": r.labels, "received_at": _dt(r.received_at),
                     "finding_id": r.finding_id} for r in conn.execute(q)]
