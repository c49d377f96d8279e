"""Approver search served by an index on PostgreSQL (issue 20).

The approver filter matches the stored approver exactly or a name among the listed
`source:a,b,c` (`search.approver_matches`). No B-tree serves the second arm, so a team's
search for a rare approver walked the team's whole history: 234 ms at 1M entries, 486 ms
at 10M. This GIN index holds the listed names as an array; the search adds "the array
contains the name" (implied by its own test, so the same rows match) and PostgreSQL reads
the matching rows from this index and the exact ones from
`ix_audit_entries_org_approver_time`.

Partial on `approver IS NOT NULL`: only approval entries have one, so ingest of every other
entry does not touch the index. The expression is `search_schema.PG_APPROVER_NAMES`,
repeated here so this migration keeps what it created. SQLite has no `string_to_array`
and keeps its scan; nothing to do there. No backfill: the index covers existing rows.

Revision ID: 1102_audit_approver_names
Revises: 1101_audit_text_columns
Create Date: 2026-12-07 01:30:00
"""

from __future__ import annotations

from alembic import op

revision = "1102_audit_approver_names"
down_revision = "1101_audit_text_columns"
branch_labels = None
depends_on = None

NAMES = ("string_to_array(substr(audit_entries.approver, "
         "strpos(audit_entries.approver, ':') + 1), ',')")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE INDEX IF NOT EXISTS ix_audit_entries_approver_names ON audit_entries "
               f"USING gin (({NAMES})) WHERE approver IS NOT NULL")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_audit_entries_approver_names")
