"""The audit log: append-only, hash-chained, written in the transaction of the event it records.

Entry ``n`` stores ``hash_n = sha256(hash_{n-1} + canonical JSON of {seq, at, kind, event})``,
so changing, deleting or reordering any entry breaks every hash after it.
:func:`verify` walks the chain and names the first entry that does not fit.
Retention (:func:`prune`) deletes the oldest entries and anchors the chain at the first
one kept (its seq and prev_hash), so what is kept stays verifiable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, text, update

from aiopsd.store import tables as t
from aiopsd.store.db import Database

GENESIS = "0" * 64
ANCHOR = "audit"  # the one row of audit_anchor


def canonical(value: Any) -> str:
    """The one JSON text of a value that every process produces (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(prev: str, seq: int, at: float, kind: str, event_json: str) -> str:
    body = canonical({"seq": seq, "at": at, "kind": kind, "event": json.loads(event_json)})
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


# Serialises audit appends across PostgreSQL replicas (one chain, one writer at a time); "paio" in hex.
_AUDIT_LOCK = 0x7061696F


class AuditChain:
    """Appends entries inside one open write transaction (the caller's).

    ``buffered`` chains collect rows and insert them in one executemany at :meth:`flush`,
    which the caller must call before its transaction commits.
    """

    def __init__(self, conn: Connection, dialect: str, *, buffered: bool = False) -> None:
        self.conn = conn
        self.dialect = dialect
        self.buffered = buffered
        self._tip: tuple[int, str] | None = None
        self._rows: list[dict[str, Any]] = []

    def _load_tip(self) -> tuple[int, str]:
        if self.dialect == "postgresql":
            # Replicas append to one chain: serialise appenders for the rest of the transaction.
            self.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK})
        row = self.conn.execute(
            select(t.audit_log.c.seq, t.audit_log.c.hash).order_by(t.audit_log.c.seq.desc()).limit(1)
        ).first()
        return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))

    def append(self, kind: str, at: float, event: Mapping[str, Any]) -> None:
        if self._tip is None:
            self._tip = self._load_tip()
        seq, prev = self._tip[0] + 1, self._tip[1]
        body = canonical(dict(event))
        digest = entry_hash(prev, seq, at, kind, body)
        self._rows.append({"seq": seq, "at": at, "kind": kind, "event": body, "prev_hash": prev, "hash": digest})
        self._tip = (seq, digest)
        if not self.buffered:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            self.conn.execute(t.audit_log.insert(), self._rows)
            self._rows = []


@dataclass(frozen=True)
class VerifyResult:
    entries: int
    first_bad: int | None = None
    problem: str = ""
    # After a retention prune: the seq the verified chain starts at (entries before were pruned).
    anchored_at: int | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad is None


def iter_entries(conn: Connection, *, batch: int = 5000, after: int = 0) -> Iterator[Any]:
    last = after
    while True:
        rows = conn.execute(
            select(t.audit_log).where(t.audit_log.c.seq > last).order_by(t.audit_log.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = int(rows[-1].seq)


def prune(conn: Connection, dialect: str, before: float, now: float) -> tuple[int, int]:
    """Delete the entries older than ``before`` and anchor the chain at the first one kept.

    Entries go by seq, oldest first, up to the first entry at or after ``before``; the newest
    entry is always kept (the chain's tip). The anchor records that entry's seq and
    prev_hash, so :func:`verify` checks the rest as before and a deletion beyond the anchor,
    or any change, is still found. Returns (entries deleted, seq the chain now starts at).
    """
    chain = AuditChain(conn, dialect)
    tip_seq, _ = chain._load_tip()  # takes the appenders' lock on PostgreSQL
    if tip_seq == 0:
        return 0, 0
    first_kept = conn.execute(select(func.min(t.audit_log.c.seq)).where(t.audit_log.c.at >= before)).scalar()
    keep_from = min(int(first_kept), tip_seq) if first_kept is not None else tip_seq
    row = conn.execute(select(t.audit_log.c.prev_hash).where(t.audit_log.c.seq == keep_from)).one()
    deleted = conn.execute(delete(t.audit_log).where(t.audit_log.c.seq < keep_from)).rowcount or 0
    if deleted:
        anchor = conn.execute(select(t.audit_anchor.c.pruned_entries).where(t.audit_anchor.c.name == ANCHOR)).scalar()
        values = {
            "seq": keep_from,
            "prev_hash": row.prev_hash,
            "pruned_at": now,
            "pruned_entries": int(anchor or 0) + deleted,
        }
        if anchor is None:
            conn.execute(t.audit_anchor.insert().values(name=ANCHOR, **values))
        else:
            conn.execute(update(t.audit_anchor).where(t.audit_anchor.c.name == ANCHOR).values(**values))
    return deleted, keep_from


def verify(conn: Connection) -> VerifyResult:
    """Walk the chain from its start (or its anchor after a prune); name the first entry that does not fit."""
    prev, expected, count = GENESIS, 1, 0
    anchor = conn.execute(select(t.audit_anchor).where(t.audit_anchor.c.name == ANCHOR)).first()
    if anchor is not None:
        prev, expected = str(anchor.prev_hash), int(anchor.seq)
    for row in iter_entries(conn, after=expected - 1):
        seq = int(row.seq)
        if seq != expected:
            return VerifyResult(count, expected, f"entry {expected} is missing (next is {seq})")
        if row.prev_hash != prev:
            return VerifyResult(count, seq, "its prev_hash does not match the hash of the entry before")
        try:
            digest = entry_hash(prev, seq, float(row.at), str(row.kind), str(row.event))
        except ValueError:
            return VerifyResult(count, seq, "its event is not valid JSON")
        if digest != row.hash:
            return VerifyResult(count, seq, "its content does not match its hash (changed after it was written)")
        prev, expected, count = digest, expected + 1, count + 1
    return VerifyResult(count, anchored_at=None if anchor is None else int(anchor.seq))


class AuditStore(Database):
    def audit(self, kind: str, now: datetime, event: Mapping[str, Any]) -> None:
        """An audit entry for an event that has no row of its own (e.g. a config reload)."""
        with self.write() as conn:
            AuditChain(conn, self.dialect).append(kind, now.timestamp(), event)

    def verify_audit(self) -> VerifyResult:
        with self.read() as conn:
            return verify(conn)
