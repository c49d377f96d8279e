"""Harden: full-text search finds the agent's stated purpose (a request entry's `purpose`,
Claude Code's `description`), which was kept but never indexed.

The document gains `entry.purpose`. PostgreSQL: the GIN expression index is rebuilt over
the new expression. SQLite: the contentless FTS5 table must be told each row's old text to
forget it, so it is emptied, its high-water mark set back to 0 (the worker's catch_up
indexes every row again, in batches), and the delete/update triggers recreated with the new
document. The expressions must stay identical to `fulltext.PG_DOCUMENT` / `sqlite_document`.

Revision ID: 0802_audit_purpose_search
Revises: 0001
Depends on: 0102_audit_search (the objects it replaces)
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0802_audit_purpose_search"
down_revision = "0001"
branch_labels = None
depends_on = "0102_audit_search"

_FIELDS = ("summary", "tool", "rule", "agent", '"user"', "approver", "runtime_id")


def _sqlite_document(row: str, extra: tuple[str, ...]) -> str:
    parts = [f"coalesce({row}.{field}, '')" for field in _FIELDS]
    parts += [f"coalesce(json_extract({row}.entry, '$.{key}'), '')" for key in extra]
    return " || ' ' || ".join(parts)


def _pg_document(extra: tuple[str, ...]) -> str:
    parts = [f"coalesce({field}, '')" for field in _FIELDS]
    parts += [f"coalesce(entry ->> '{key}', '')" for key in extra]
    return ("to_tsvector('simple'::regconfig, regexp_replace("
            + " || ' ' || ".join(parts) + ", '[^[:alnum:]]+', ' ', 'g'))")


OLD, NEW = ("reason",), ("reason", "purpose")


def _rebuild(extra: tuple[str, ...]) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_entries_fts_{trigger}")
        op.execute("INSERT INTO audit_entries_fts(audit_entries_fts) VALUES ('delete-all')")
        op.execute("UPDATE audit_entries_fts_state SET indexed = 0 WHERE id = 1")
        indexed = "(SELECT indexed FROM audit_entries_fts_state WHERE id = 1)"
        op.execute("CREATE TRIGGER audit_entries_fts_delete AFTER DELETE ON audit_entries "
                   f"WHEN old.id <= {indexed} "
                   "BEGIN INSERT INTO audit_entries_fts(audit_entries_fts, rowid, body) "
                   f"VALUES ('delete', old.id, {_sqlite_document('old', extra)}); END")
        op.execute("CREATE TRIGGER audit_entries_fts_update AFTER UPDATE ON audit_entries "
                   f"WHEN old.id <= {indexed} "
                   "BEGIN INSERT INTO audit_entries_fts(audit_entries_fts, rowid, body) "
                   f"VALUES ('delete', old.id, {_sqlite_document('old', extra)}); "
                   "INSERT INTO audit_entries_fts(rowid, body) VALUES "
                   f"(new.id, {_sqlite_document('new', extra)}); END")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_audit_entries_fts")
        op.execute("CREATE INDEX ix_audit_entries_fts ON audit_entries USING gin "
                   f"({_pg_document(extra)})")


def upgrade() -> None:
    _rebuild(NEW)


def downgrade() -> None:
    _rebuild(OLD)
