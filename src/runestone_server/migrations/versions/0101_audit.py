"""Audit: entries shipped by runtimes, per-runtime chain state, kept checkpoints, retention.

Revision ID: 0101_audit
Revises: 0001
Create Date: 2026-11-25 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0101_audit"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("runtime_id", sa.String(length=80), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("runtime_id", "seq", name="uq_audit_checkpoints_runtime_seq"),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoints_org_id"), ["org_id"],
                              unique=False)

    op.create_table(
        "audit_retention",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_pruned", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("org_id"),
    )
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("runtime_id", sa.String(length=80), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("severity", sa.String(length=20), nullable=True),
        sa.Column("rule", sa.String(length=200), nullable=True),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("user", sa.String(length=200), nullable=True),
        sa.Column("approver", sa.String(length=200), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("action_hash", sa.String(length=64), nullable=True),
        sa.Column("policy_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("entry", sa.JSON(), nullable=False),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("runtime_id", "seq", name="uq_audit_entries_runtime_seq"),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entries_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_audit_entries_org_time", ["org_id", "time"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_entries_request_id"), ["request_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_audit_entries_time"), ["time"], unique=False)

    op.create_table(
        "audit_chains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("runtime_ref", sa.Integer(), nullable=False),
        sa.Column("runtime_id", sa.String(length=80), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("base_seq", sa.BigInteger(), nullable=False),
        sa.Column("base_hash", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=True),
        sa.Column("checkpoint_hash", sa.String(length=64), nullable=True),
        sa.Column("checkpoint_signature", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("problem_seq", sa.BigInteger(), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["runtime_ref"], ["runtimes.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("runtime_id"),
        sa.UniqueConstraint("runtime_ref"),
    )
    with op.batch_alter_table("audit_chains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_chains_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_chains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_chains_org_id"))
    op.drop_table("audit_chains")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_time"))
        batch_op.drop_index(batch_op.f("ix_audit_entries_request_id"))
        batch_op.drop_index("ix_audit_entries_org_time")
        batch_op.drop_index(batch_op.f("ix_audit_entries_org_id"))
    op.drop_table("audit_entries")
    op.drop_table("audit_retention")
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoints_org_id"))
    op.drop_table("audit_checkpoints")
