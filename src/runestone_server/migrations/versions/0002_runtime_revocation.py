"""Core: runtimes can be revoked (when, by whom, why).

In the core branch (after 0001, beside the domain branches): `runtimes` is a core table and
every domain's runtime-credential endpoint refuses a revoked runtime through the core's
`runtime_principal`. Nullable columns, so enrolled runtimes stay live.

Revision ID: 0002_runtime_revocation
Revises: 0001
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_runtime_revocation"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Adding nullable columns needs no table rebuild on SQLite (other tables reference
    # `runtimes`), so batch mode issues plain ALTER TABLE ... ADD COLUMN.
    with op.batch_alter_table("runtimes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoked", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("revoked_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("revoked_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runtimes", schema=None) as batch_op:
        batch_op.drop_column("revoked_reason")
        batch_op.drop_column("revoked_by")
        batch_op.drop_column("revoked")
