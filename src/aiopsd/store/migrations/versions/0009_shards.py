"""Sharded detection: shard leases, shard members, per-shard watermarks and the scoring ledger.

Revision ID: 0009
Revises: 0007 (0008 is not used)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shard_leases",
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("shard"),
    )
    op.create_table(
        "shard_members",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("shards", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "shard_marks",
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("watermark", sa.Float(), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("source", "shard"),
    )
    op.create_table(
        "shard_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.Column("series", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_shard_ledger_at", "shard_ledger", ["at"])


def downgrade() -> None:
    op.drop_index("ix_shard_ledger_at", table_name="shard_ledger")
    op.drop_table("shard_ledger")
    op.drop_table("shard_marks")
    op.drop_table("shard_members")
    op.drop_table("shard_leases")
