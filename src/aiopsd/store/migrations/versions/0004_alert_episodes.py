"""Alert episodes: a re-fire after a resolve is a new finding; why a finding resolved.

Revision ID: 0004
Revises: 0003

Existing firing alert findings become their fingerprint's current episode (numbered 1), so
their redeliveries keep landing on them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_episodes",
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.String(length=64), nullable=True),
        sa.Column("ends_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("fingerprint"),
    )
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("uq_alert_delivery", type_="unique")
        batch.create_unique_constraint("uq_alert_delivery", ["fingerprint", "status", "starts_at", "finding_id"])
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("resolution", sa.String(length=32), nullable=True))
    # The newest delivery's finding of each fingerprint is its current episode.
    op.execute("""
        INSERT INTO alert_episodes (fingerprint, episode, finding_id, ends_at)
        SELECT a.fingerprint, 1, a.finding_id, NULL FROM alerts a
        WHERE a.id = (SELECT MAX(b.id) FROM alerts b WHERE b.fingerprint = a.fingerprint)
    """)


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_column("resolution")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("uq_alert_delivery", type_="unique")
        batch.create_unique_constraint("uq_alert_delivery", ["fingerprint", "status", "starts_at"])
    op.drop_table("alert_episodes")
