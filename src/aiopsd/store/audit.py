"""The audit log: append-only, hash-chained, written in the transaction of the event it records.

Entry ``n`` stores ``hash_n = sha256(hash_{n-1} + canonical JSON of {seq, at, kind, event})``,
so changing, deleting or reordering any entry breaks every hash after it.
:func:`verify` walks the chain and names the first entry that does not fit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, text

from aiopsd.store import tables as t

GENESIS = "0" * 64


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
        row = self.conn.execute(select(t.audit_log.c.seq, t.audit_log.c.hash)
                                .order_by(t.audit_log.c.seq.desc()).limit(1)).first()
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
class AuditEntry:
    seq: int
    at: float
    kind: str
    event: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    entries: int
    first_bad: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad is None


def iter_entries(conn: Connection, *, batch: int = 5000) -> Iterator[Any]:
    last = 0
    while True:
        rows = conn.execute(select(t.audit_log).where(t.audit_log.c.seq > last)
                            .order_by(t.audit_log.c.seq).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = int(rows[-1].seq)


def verify(conn: Connection) -> VerifyResult:
    """Walk the whole chain; the first entry whose seq, link or hash is wrong is named."""
    prev, expected, count = GENESIS, 1, 0
    for row in iter_entries(conn):
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
    return VerifyResult(count)
