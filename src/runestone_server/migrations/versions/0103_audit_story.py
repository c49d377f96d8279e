"""Audit story: find the server's events about one request by index, not by reading every
event of the organisation (`detail.request_id`, an expression over the JSON column).

The index is not in the models (an expression index over another domain's table);
`runestone_server.audit.fulltext.include_name` keeps it out of schema comparisons, and
`search.story` repeats the expression verbatim so the database uses it.

Revision ID: 0103_audit_story
Revises: 0102_audit_search
Create Date: 2026-11-25 14:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0103_audit_story"
down_revision = "0102_audit_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("CREATE INDEX ix_server_events_request_id ON server_events "
                   "(json_extract(detail, '$.request_id'))")
    elif dialect == "postgresql":
        op.execute("CREATE INDEX ix_server_events_request_id ON server_events "
                   "((detail ->> 'request_id'))")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_server_events_request_id")
