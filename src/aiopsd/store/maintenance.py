"""Maintenance windows created at run time (``aiopsd maintenance start``): one small table, audited.

Rows are plain data here (the store imports nothing from the engine); the daemon turns
them into :class:`aiopsd.engine.maintenance.MaintenanceWindow` with :func:`as_window_data`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from aiopsd.errors import AiopsdError
from aiopsd.store import tables as t
from aiopsd.store.audit import AuditChain
from aiopsd.store.rows import ts, utc
from aiopsd.store.state import StateStore


@dataclass(frozen=True)
class StoredWindow:
    id: int
    name: str
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime

    def as_window_data(self) -> dict[str, Any]:
        """Keyword arguments for a one-off MaintenanceWindow."""
        return {
            "name": self.name,
            "labels": self.labels,
            "start": self.starts_at,
            "end": self.ends_at,
            "comment": self.comment,
            "created_by": self.created_by,
        }


def _row(r: Any) -> StoredWindow:
    return StoredWindow(
        id=r.id,
        name=r.name,
        labels=dict(r.labels),
        starts_at=utc(r.starts_at),
        ends_at=utc(r.ends_at),
        comment=r.comment,
        created_by=r.created_by,
        created_at=utc(r.created_at),
    )


def add_window(
    store: StateStore,
    *,
    name: str,
    labels: Mapping[str, str],
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    comment: str = "",
    created_by: str = "",
) -> StoredWindow:
    """Store a window (a name may be reused once its window has ended); the start is audited."""
    with store.write() as conn:
        old = conn.execute(select(t.maintenance_windows).where(t.maintenance_windows.c.name == name)).first()
        if old is not None:
            if old.ends_at > ts(now):
                raise AiopsdError(
                    f"maintenance window {name!r} is already active until "
                    f"{utc(old.ends_at):%Y-%m-%d %H:%M:%S}Z; "
                    f"stop it first or pick another name"
                )
            conn.execute(delete(t.maintenance_windows).where(t.maintenance_windows.c.id == old.id))
        values = {
            "name": name,
            "labels": dict(labels),
            "starts_at": ts(starts_at),
            "ends_at": ts(ends_at),
            "comment": comment,
            "created_by": created_by,
            "created_at": ts(now),
        }
        conn.execute(insert(t.maintenance_windows).values(**values))
        AuditChain(conn, store.dialect).append("maintenance_start", ts(now), values)
        row = conn.execute(select(t.maintenance_windows).where(t.maintenance_windows.c.name == name)).one()
    return _row(row)


def stop_window(store: StateStore, name: str, *, now: datetime, by: str = "") -> bool:
    """End an active window now; False when no window of that name is active."""
    tbl = t.maintenance_windows
    with store.write() as conn:
        done = conn.execute(
            update(tbl).where(tbl.c.name == name, tbl.c.ends_at > ts(now)).values(ends_at=ts(now))
        ).rowcount
        if done:
            AuditChain(conn, store.dialect).append("maintenance_stop", ts(now), {"name": name, "by": by})
    return bool(done)


def list_windows(store: StateStore, *, now: datetime | None = None) -> list[StoredWindow]:
    """All stored windows, or with ``now`` those not ended yet; earliest end first."""
    tbl = t.maintenance_windows
    q = select(tbl).order_by(tbl.c.ends_at)
    if now is not None:
        q = q.where(tbl.c.ends_at > ts(now))
    with store.read() as conn:
        return [_row(r) for r in conn.execute(q)]
