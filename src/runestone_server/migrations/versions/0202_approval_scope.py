"""Approval scope: what an approval covers (this action once, or the request's rules for the
requesting session for some minutes), on each vote and, as decided, on the request.

Existing rows become "once" (0 minutes) through the server defaults: what they were.

Revision ID: 0202_approval_scope
Revises: 0201_approvals
Create Date: 2026-11-25 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0202_approval_scope"
down_revision = "0201_approvals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approval_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=20), server_default="once",
                                      nullable=False))
        batch_op.add_column(sa.Column("scope_minutes", sa.Integer(), server_default="0",
                                      nullable=False))
    with op.batch_alter_table("approval_votes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=20), server_default="once",
                                      nullable=False))
        batch_op.add_column(sa.Column("minutes", sa.Integer(), server_default="0",
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("approval_votes", schema=None) as batch_op:
        batch_op.drop_column("minutes")
        batch_op.drop_column("scope")
    with op.batch_alter_table("approval_requests", schema=None) as batch_op:
        batch_op.drop_column("scope_minutes")
        batch_op.drop_column("scope")
