"""Audit search: keyset indexes on audit_entries, and full text (SQLite FTS5 with a
high-water mark of indexed rows; a PostgreSQL GIN index over a tsvector expression).

The full-text objects are not in the models (a virtual table and an expression index);
`runestone_server.audit.fulltext.include_name` keeps them out of schema comparisons. The
document expression must stay identical to `fulltext.PG_DOCUMENT` / the triggers' text.

Revision ID: 0102_audit_search
Revises: 0101_audit
Create Date: 2026-11-25 13:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0102_audit_search"
down_revision = "0101_audit"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_audit_entries_team_time", ["team_id", "time", "id"]),
    ("ix_audit_entries_runtime_time", ["runtime_id", "time", "id"]),
    ("ix_audit_entries_org_tool_time", ["org_id", "tool", "time", "id"]),
    ("ix_audit_entries_org_user_time", ["org_id", "user", "time", "id"]),
    ("ix_audit_entries_org_agent_time", ["org_id", "agent", "time", "id"]),
    ("ix_audit_entries_org_rule_time", ["org_id", "rule", "time", "id"]),
    ("ix_audit_entries_org_approver_time", ["org_id", "approver", "time", "id"]),
)


def _sqlite_document(row: str) -> str:
    return (f"coalesce({row}.summary, '') || ' ' || coalesce({row}.tool, '') || ' ' || "
            f"coalesce({row}.rule, '') || ' ' || coalesce({row}.agent, '') || ' ' || "
            f"coalesce({row}.\"user\", '') || ' ' || coalesce({row}.approver, '') || ' ' || "
            f"coalesce({row}.runtime_id, '') || ' ' || "
            f"coalesce(json_extract({row}.entry, '$.reason'), '')")


PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace("
    "coalesce(summary, '') || ' ' || coalesce(tool, '') || ' ' || coalesce(rule, '') || ' ' "
    "|| coalesce(agent, '') || ' ' || coalesce(\"user\", '') || ' ' || coalesce(approver, '') "
    "|| ' ' || coalesce(runtime_id, '') || ' ' || coalesce(entry ->> 'reason', ''), "
    "'[^[:alnum:]]+', ' ', 'g'))"
)


def upgrade() -> None:
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        for name, columns in INDEXES:
            batch_op.create_index(name, columns, unique=False)
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        # Contentless: the text lives in audit_entries. Rows are indexed in batches up to
        # `indexed` (fulltext.catch_up: FTS5 flushes its pending terms at every statement
        # of a trigger, which made a per-row insert trigger cost ~300 us an entry); deletes
        # and updates of indexed rows are mirrored at once by the triggers.
        op.execute("CREATE VIRTUAL TABLE audit_entries_fts USING fts5(body, content='')")
        op.execute("CREATE TABLE audit_entries_fts_state (id INTEGER PRIMARY KEY "
                   "CHECK (id = 1), indexed INTEGER NOT NULL)")
        op.execute("INSERT INTO audit_entries_fts_state (id, indexed) VALUES (1, 0)")
        indexed = "(SELECT indexed FROM audit_entries_fts_state WHERE id = 1)"
        op.execute("CREATE TRIGGER audit_entries_fts_delete AFTER DELETE ON audit_entries "
                   f"WHEN old.id <= {indexed} "
                   "BEGIN INSERT INTO audit_entries_fts(audit_entries_fts, rowid, body) "
                   f"VALUES ('delete', old.id, {_sqlite_document('old')}); END")
        op.execute("CREATE TRIGGER audit_entries_fts_update AFTER UPDATE ON audit_entries "
                   f"WHEN old.id <= {indexed} "
                   "BEGIN INSERT INTO audit_entries_fts(audit_entries_fts, rowid, body) "
                   f"VALUES ('delete', old.id, {_sqlite_document('old')}); "
                   "INSERT INTO audit_entries_fts(rowid, body) VALUES "
                   f"(new.id, {_sqlite_document('new')}); END")
    elif dialect == "postgresql":
        op.execute(f"CREATE INDEX ix_audit_entries_fts ON audit_entries USING gin ({PG_DOCUMENT})")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_entries_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS audit_entries_fts_state")
        op.execute("DROP TABLE IF EXISTS audit_entries_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_audit_entries_fts")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        for name, _ in reversed(INDEXES):
            batch_op.drop_index(name)
