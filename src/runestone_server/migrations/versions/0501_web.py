"""Web: the daily roll-up of decisions behind the dashboard's overview.

Revision ID: 0501_web
Revises: 0001
Create Date: 2026-11-25 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0501_web"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_decision_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "team_id", "day", "decision", "rule",
                            name="uq_web_decision_days"),
    )
    with op.batch_alter_table("web_decision_days", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_decision_days_org_id"), ["org_id"],
                              unique=False)
    op.create_table(
        "web_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("web_rollup")
    with op.batch_alter_table("web_decision_days", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_decision_days_org_id"))
    op.drop_table("web_decision_days")
