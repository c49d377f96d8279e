"""Govern: daily roll-ups of usage (agent x tool) and of asks (rule x program).

Revision ID: 0701_govern_usage
Revises: 0001
Create Date: 2026-12-06 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0701_govern_usage"
down_revision = "0001"
branch_labels = None
depends_on = None

COUNTS = ("decisions", "asks", "approvals", "denies", "limit_hits")


def upgrade() -> None:
    op.create_table(
        "govern_usage_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "team_id", "day", "agent", "tool",
                            name="uq_govern_usage_days"),
    )
    op.create_index("ix_govern_usage_days_org_id", "govern_usage_days", ["org_id"])
    op.create_index("ix_govern_usage_days_team_day", "govern_usage_days", ["team_id", "day"])
    op.create_table(
        "govern_ask_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("program", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "team_id", "day", "rule", "program",
                            name="uq_govern_ask_days"),
    )
    op.create_index("ix_govern_ask_days_org_id", "govern_ask_days", ["org_id"])
    op.create_index("ix_govern_ask_days_team_day", "govern_ask_days", ["team_id", "day"])
    op.create_table(
        "govern_usage_mark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("govern_usage_mark")
    op.drop_index("ix_govern_ask_days_team_day", table_name="govern_ask_days")
    op.drop_index("ix_govern_ask_days_org_id", table_name="govern_ask_days")
    op.drop_table("govern_ask_days")
    op.drop_index("ix_govern_usage_days_team_day", table_name="govern_usage_days")
    op.drop_index("ix_govern_usage_days_org_id", table_name="govern_usage_days")
    op.drop_table("govern_usage_days")
