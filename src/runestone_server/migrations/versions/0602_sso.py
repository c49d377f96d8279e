"""Ops: single sign-on with OpenID Connect (runestone_server.sso).

Revision ID: 0602_sso
Revises: 0001
Create Date: 2026-12-06 17:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0602_sso"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_providers",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=False),
        sa.Column("username_claim", sa.String(length=100), nullable=False),
        sa.Column("groups_claim", sa.String(length=100), nullable=False),
        sa.Column("group_map", sa.JSON(), nullable=False),
        sa.Column("local_passwords", sa.Boolean(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("org_id"),
    )
    op.create_table(
        "sso_states",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=100), nullable=False),
        sa.Column("verifier", sa.String(length=200), nullable=False),
        sa.Column("next_path", sa.String(length=500), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("state_hash"),
    )
    op.create_table(
        "sso_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("last_login", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "issuer", "subject"),
        sa.UniqueConstraint("user_id"),
    )
    op.create_index("ix_sso_identities_org_id", "sso_identities", ["org_id"])


def downgrade() -> None:
    op.drop_index("ix_sso_identities_org_id", table_name="sso_identities")
    op.drop_table("sso_identities")
    op.drop_table("sso_states")
    op.drop_table("sso_providers")
