"""The connection to the state store: engines for SQLite and PostgreSQL, read and write transactions.

Every aggregate of the store (findings, decisions, runs, ...) is a class built on
:class:`Database`; :class:`aiopsd.store.state.StateStore` joins them into one object.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from aiopsd.errors import StoreUnavailableError
from aiopsd.store import migrate


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


class Database:
    """One engine and its transactions. Thread-safe; one instance per process.

    A context manager: ``with StateStore(url) as store: ...`` closes its connections.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.engine = (
            _sqlite_engine(url)
            if url.startswith("sqlite")
            else create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
        )
        self.dialect = self.engine.dialect.name
        # Called with ("read" | "write", seconds) after every transaction (the daemon's store latency metric).
        self.observe: Callable[[str, float], None] | None = None
        # One writer at a time inside this process keeps SQLite from busy-waiting on itself.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        if create:
            try:
                migrate.upgrade(self.engine)
            except SQLAlchemyError as exc:
                self.engine.dispose()
                raise StoreUnavailableError(f"cannot open state store {self.safe_url}: {exc}") from exc

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

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
            raise StoreUnavailableError(
                f"state store write failed: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
            ) from exc
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

    def insert(self, table: Any) -> Any:
        """An INSERT of the dialect at hand, so ``on_conflict_do_*`` works on SQLite and PostgreSQL."""
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def ping(self) -> bool:
        try:
            with self.read() as conn:
                conn.execute(select(1))
            return True
        except StoreUnavailableError:
            return False
