"""Approvals: a team's fallback notification channels, told of the asks no route matches.

A table of its own in the approvals branch (not a column on `teams`): the setting belongs to
the approval domain, and teams without one simply have no row (nobody notified, as before).

Revision ID: 0203_approval_fallback
Revises: 0202_approval_scope
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0203_approval_fallback"
down_revision = "0202_approval_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_team_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("fallback_channel_ids", sa.JSON(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team_id"),
    )
    with op.batch_alter_table("approval_team_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approval_team_settings_org_id"), ["org_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("approval_team_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approval_team_settings_org_id"))
    op.drop_table("approval_team_settings")
