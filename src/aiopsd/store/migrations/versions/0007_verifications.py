"""Closed-loop remediation: verify plans on runs, verifications, rule restores.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("action_runs", sa.Column("verify", sa.JSON(), nullable=True))
    op.create_table(
        "verifications",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("rule", sa.String(length=256), nullable=False),
        sa.Column("finding_id", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("deadline", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("last_check", sa.String(length=16), nullable=True),
        sa.Column("last_checked_at", sa.Float(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index("ix_verifications_status", "verifications", ["status", "due_at"])
    op.create_index("ix_verifications_rule", "verifications", ["rule", "decided_at"])
    op.create_index("ix_verifications_finding", "verifications", ["finding_id"])
    op.create_table(
        "rule_restores",
        sa.Column("rule", sa.String(length=256), nullable=False),
        sa.Column("restored_at", sa.Float(), nullable=False),
        sa.Column("by", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("rule"),
    )


def downgrade() -> None:
    op.drop_table("rule_restores")
    op.drop_index("ix_verifications_finding", table_name="verifications")
    op.drop_index("ix_verifications_rule", table_name="verifications")
    op.drop_index("ix_verifications_status", table_name="verifications")
    op.drop_table("verifications")
    with op.batch_alter_table("action_runs") as batch:
        batch.drop_column("verify")
