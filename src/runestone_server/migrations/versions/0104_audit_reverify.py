"""Audit: when each stored chain was last re-verified by the worker.

The worker re-walks every chain's stored entries and checkpoints periodically, so a row
changed or deleted in the database is found (and alerted on) without anyone opening the
verify page. The column is also the replicas' claim. Nullable: existing chains are due at
once.

Revision ID: 0104_audit_reverify
Revises: 0103_audit_story
Create Date: 2026-12-06 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0104_audit_reverify"
down_revision = "0103_audit_story"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_chains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reverified", sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_chains", schema=None) as batch_op:
        batch_op.drop_column("reverified")
