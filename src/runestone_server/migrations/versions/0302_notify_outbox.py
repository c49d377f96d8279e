"""Notification outbox: a unique dedup key per channel, and a token for each claim.

The dedup key was enforced by a look before the insert, which two concurrent enqueues both
pass; duplicates that race left behind are removed (the first of each is kept) before the
unique constraint is added. `claim_token` lets a sender record its outcome only while the
claim is still its own.

Revision ID: 0302_notify_outbox
Revises: 0301_notify
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0302_notify_outbox"
down_revision = "0301_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM notification_deliveries WHERE dedup_key IS NOT NULL AND id NOT IN ("
        "SELECT MIN(id) FROM notification_deliveries WHERE dedup_key IS NOT NULL "
        "GROUP BY channel_id, dedup_key)")
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch_op.drop_index("ix_notification_deliveries_dedup")
        batch_op.create_unique_constraint("uq_notification_deliveries_dedup",
                                          ["channel_id", "dedup_key"])


def downgrade() -> None:
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_notification_deliveries_dedup", type_="unique")
        batch_op.create_index("ix_notification_deliveries_dedup",
                              ["channel_id", "dedup_key"], unique=False)
        batch_op.drop_column("claim_token")
