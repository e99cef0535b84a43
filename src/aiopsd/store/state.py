"""StateStore: every stage's durable memory (SQLite by default, PostgreSQL for HA).

One class per aggregate, each in its module, joined here into one facade:

- findings.py: findings (merge on sight, resolve, cancel what has not started);
- decisions.py: decisions and the runs they queue;
- runs.py: the run state machine (claim, finish, retry, interrupt, approve);
- history.py: the past the guards look back on, as plain records, and circuit resets;
- cursors.py: source cursors and source health;
- queries.py: read models for the API, the status page and /metrics;
- verifications.py: verifications of succeeded runs, their outcomes, rule restores;
- audit.py: the hash-chained audit log; alerts.py: Alertmanager intake (used below).

Writes that must not be lost (alerts, decisions with their runs) happen in one
transaction each; a failure to commit raises :class:`StoreUnavailableError`, which
the webhook turns into a 503 so Alertmanager retries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from aiopsd.store import alerts as alerts_intake
from aiopsd.store.alerts import AcceptResult, AlertBatch, AlertDelivery
from aiopsd.store.audit import AuditStore
from aiopsd.store.cursors import CursorsStore
from aiopsd.store.decisions import DecisionsStore
from aiopsd.store.findings import FindingsStore
from aiopsd.store.history import HistoryStore
from aiopsd.store.queries import QueriesStore
from aiopsd.store.runs import Claim, RunsStore
from aiopsd.store.verifications import VerificationsStore

__all__ = ["AcceptResult", "AlertBatch", "AlertDelivery", "Claim", "StateStore"]


class StateStore(
    FindingsStore,
    DecisionsStore,
    RunsStore,
    VerificationsStore,
    HistoryStore,
    CursorsStore,
    QueriesStore,
    AuditStore,
):
    """All reads and writes of aiopsd's state. Thread-safe; one instance per process; a context manager."""

    def accept_alerts(
        self, alerts: Sequence[AlertDelivery], *, received_at: float, receiver: str | None, group_key: str | None
    ) -> AcceptResult:
        """Store alerts and their findings in one transaction; duplicates are no-ops."""
        with self.write() as conn:
            return alerts_intake.accept(
                self, conn, alerts, received_at=received_at, receiver=receiver, group_key=group_key
            )

    def accept_alert_batches(
        self, batches: Sequence[AlertBatch], on_settled: Callable[[int, AcceptResult], None] | None = None
    ) -> list[AcceptResult]:
        """Several webhook requests' alerts in one transaction (group commit): all durable or none.

        ``on_settled`` hears early about requests that were redeliveries only (see store/alerts.py).
        """
        with self.write() as conn:
            return alerts_intake.accept_batches(self, conn, batches, on_settled)

    def expire_alert_findings(self, now: datetime, max_age: float) -> list[str]:
        """Resolve, as ``expired``, alert findings whose resolve never came (see store/alerts.py)."""
        with self.write() as conn:
            return alerts_intake.expire(self, conn, now.timestamp(), max_age)
