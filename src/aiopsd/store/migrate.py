"""Schema migrations (Alembic) for SQLite and PostgreSQL: ``aiopsd db upgrade`` and the daemon's start.

A database created by the walking skeleton (tables, no ``alembic_version``) is
stamped at the first revision, then upgraded like any other. On PostgreSQL the
upgrade holds an advisory lock, so replicas starting together migrate once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

logger = logging.getLogger(__name__)

SCRIPTS = Path(__file__).resolve().parent / "migrations"
FIRST = "0001"
# Arbitrary constant shared by every aiopsd replica: "aiopsd migrations".
_MIGRATION_LOCK = 0x41_10_95_D0


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``revision``; return (before, after)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            conn.commit()
        try:
            before = MigrationContext.configure(conn).get_current_revision()
            if before is None and inspect(conn).has_table("alerts"):
                logger.info("state store predates migrations: stamping it at revision %s", FIRST)
                command.stamp(alembic_config(conn), FIRST)
                conn.commit()
                before = FIRST
            command.upgrade(alembic_config(conn), revision)
            conn.commit()
            after = MigrationContext.configure(conn).get_current_revision()
        finally:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()
    if before != after:
        logger.info("state store schema upgraded from %s to %s", before or "empty", after)
    return before, after
