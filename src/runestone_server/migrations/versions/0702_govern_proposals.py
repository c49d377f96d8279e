"""Govern: each team's thresholds for proposing rules from approvals.

Revision ID: 0702_govern_proposals
Revises: 0001
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0702_govern_proposals"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "govern_proposal_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("min_approvals", sa.Integer(), nullable=False),
        sa.Column("min_people", sa.Integer(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team_id", name="uq_govern_proposal_settings_team"),
    )
    op.create_index("ix_govern_proposal_settings_org_id", "govern_proposal_settings",
                    ["org_id"])


def downgrade() -> None:
    op.drop_index("ix_govern_proposal_settings_org_id", table_name="govern_proposal_settings")
    op.drop_table("govern_proposal_settings")
