"""Alembic environment: runs on the connection aiopsd hands over (see aiopsd.store.migrate)."""

from __future__ import annotations

from alembic import context

from aiopsd.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
