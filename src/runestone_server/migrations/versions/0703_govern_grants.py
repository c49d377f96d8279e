"""Govern: grants (pre-approvals issued on the server), their offline allotments and uses.

Revision ID: 0703_govern_grants
Revises: 0001
Create Date: 2026-12-06 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0703_govern_grants"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "govern_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.String(length=40), nullable=False),
        sa.Column("action_key", sa.String(length=64), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("sessions", sa.JSON(), nullable=False),
        sa.Column("agents", sa.JSON(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("offline_uses", sa.Integer(), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["revoked_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("grant_id", name="uq_govern_grants_grant_id"),
    )
    op.create_index("ix_govern_grants_org_id", "govern_grants", ["org_id"])
    op.create_index("ix_govern_grants_team", "govern_grants", ["team_id"])
    op.create_table(
        "govern_grant_allotments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("grant_pk", sa.Integer(), nullable=False),
        sa.Column("runtime_pk", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["grant_pk"], ["govern_grants.id"]),
        sa.ForeignKeyConstraint(["runtime_pk"], ["runtimes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("grant_pk", "runtime_pk", name="uq_govern_grant_allotments"),
    )
    op.create_index("ix_govern_grant_allotments_org_id", "govern_grant_allotments",
                    ["org_id"])
    op.create_table(
        "govern_grant_uses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("grant_pk", sa.Integer(), nullable=False),
        sa.Column("runtime_pk", sa.Integer(), nullable=False),
        sa.Column("action_key", sa.String(length=64), nullable=False),
        sa.Column("session", sa.String(length=200), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("use", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["grant_pk"], ["govern_grants.id"]),
        sa.ForeignKeyConstraint(["runtime_pk"], ["runtimes.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_govern_grant_uses_org_id", "govern_grant_uses", ["org_id"])
    op.create_index("ix_govern_grant_uses_grant", "govern_grant_uses", ["grant_pk"])


def downgrade() -> None:
    op.drop_index("ix_govern_grant_uses_grant", table_name="govern_grant_uses")
    op.drop_index("ix_govern_grant_uses_org_id", table_name="govern_grant_uses")
    op.drop_table("govern_grant_uses")
    op.drop_index("ix_govern_grant_allotments_org_id", table_name="govern_grant_allotments")
    op.drop_table("govern_grant_allotments")
    op.drop_index("ix_govern_grants_team", table_name="govern_grants")
    op.drop_index("ix_govern_grants_org_id", table_name="govern_grants")
    op.drop_table("govern_grants")
