"""Cursors (how far each source has read) and source health (up, last error, lag)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import select

from aiopsd.store import rows
from aiopsd.store import tables as t
from aiopsd.store.db import Database
from aiopsd.store.rows import ts


class CursorsStore(Database):
    def get_cursor(self, name: str) -> dict[str, Any] | None:
        with self.read() as conn:
            value = conn.execute(select(t.cursors.c.value).where(t.cursors.c.name == name)).scalar()
        return dict(value) if value is not None else None

    def list_cursors(self) -> dict[str, dict[str, Any]]:
        with self.read() as conn:
            return {r.name: dict(r.value) for r in conn.execute(select(t.cursors.c.name, t.cursors.c.value))}

    def put_cursor(self, name: str, value: dict[str, Any]) -> None:
        with self.write() as conn:
            stmt = self.insert(t.cursors).values(name=name, value=value, updated_at=time.time())
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["name"], set_={"value": value, "updated_at": time.time()})
            )

    def set_source(
        self, name: str, kind: str, *, up: bool, now: datetime, error: str = "", lag: float | None = None
    ) -> None:
        values: dict[str, Any] = {"kind": kind, "up": up, "error": error, "lag": lag, "updated_at": ts(now)}
        if up:
            values["last_ok"] = ts(now)
        else:
            values["last_error_at"] = ts(now)
        with self.write() as conn:
            stmt = self.insert(t.sources).values(name=name, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=values))

    def list_sources(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [rows.source(r) for r in conn.execute(select(t.sources).order_by(t.sources.c.name))]
