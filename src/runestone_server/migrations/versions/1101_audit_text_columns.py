"""Faster ingest on PostgreSQL (issue 20): the full-text document reads columns only, and the
index that repeated `ix_audit_entries_org_time`'s first column is gone.

- `audit_entries.reason` and `.purpose`: the two fields of the entry the text document
  reads, kept in columns ingest fills (`ingest.document_fields`). PostgreSQL's GIN
  expression read them with `runestone_json_text(entry, key)`, which parses the row's whole
  `json` text, twice a row: ~8% of the database's work per inserted entry. The index is
  rebuilt over the columns (`fulltext.PG_DOCUMENT` repeats the expression). Existing rows
  are backfilled with the values the old expression read, so search finds what it found
  before; verification checks the columns against the hashed entry like every other
  derived column, so the backfill must equal `document_fields`: on PostgreSQL it is
  `runestone_json_text` itself (which `document_fields` reproduces); on SQLite, whose
  `json_extract` gives other text than PostgreSQL for anything but a string, strings are
  copied in SQL and the rare rest (numbers, booleans, arrays, objects, a NUL anywhere in
  the entry) computed by `document_fields`. SQLite's text index keeps its document (it
  is built in batches off the ingest path; see fulltext.py).
- `ix_audit_entries_org_id` is dropped: `ix_audit_entries_org_time (org_id, time)` serves
  every lookup by organisation (and the foreign key's checks when an organisation is
  deleted); each of the table's B-tree indexes costs every insert ~3% of its work.

On a large PostgreSQL table the backfill rewrites every row that has a reason or purpose
(the table grows until autovacuum reclaims the old versions); the text index is dropped
first and built once at the end.

Revision ID: 1101_audit_text_columns
Revises: 1001_json_text_nul (the text document it rebuilds; through 0802 it depends on the
audit tables. No `depends_on` a head of another branch: Alembic would then record only
this revision in `alembic_version`, and readiness would find that head missing.)
Create Date: 2026-12-07 00:10:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "1101_audit_text_columns"
down_revision = "1001_json_text_nul"
branch_labels = None
depends_on = None

_FIELDS = ("summary", "tool", "rule", "agent", '"user"', "approver", "runtime_id")
KEYS = ("reason", "purpose")


def _pg_document(read: str) -> str:
    parts = [f"coalesce({field}, '')" for field in _FIELDS]
    parts += [f"coalesce({read.format(key=key)}, '')" for key in KEYS]
    return ("to_tsvector('simple'::regconfig, regexp_replace("
            + " || ' ' || ".join(parts) + ", '[^[:alnum:]]+', ' ', 'g'))")


def _pg_text_index(read: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_audit_entries_fts")
    op.execute("CREATE INDEX ix_audit_entries_fts ON audit_entries USING gin "
               f"({_pg_document(read)})")


def _backfill_postgresql() -> None:
    op.execute(
        "UPDATE audit_entries AS a SET reason = f.reason, purpose = f.purpose FROM ("
        "SELECT id, runestone_json_text(entry, 'reason') AS reason, "
        "runestone_json_text(entry, 'purpose') AS purpose FROM audit_entries) AS f "
        "WHERE a.id = f.id AND (f.reason IS NOT NULL OR f.purpose IS NOT NULL)")


def _backfill_sqlite() -> None:
    from runestone_server.audit.ingest import document_fields

    types = {key: f"json_type(entry, '$.{key}')" for key in KEYS}
    op.execute(
        "UPDATE audit_entries SET "
        + ", ".join(f"{key} = CASE WHEN {types[key]} = 'text' THEN "
                    f"json_extract(entry, '$.{key}') END" for key in KEYS)
        + " WHERE instr(entry, '\\u0000') = 0 AND ("
        + " OR ".join(f"{types[key]} = 'text'" for key in KEYS) + ")")
    connection = op.get_bind()
    rest = connection.execute(sa.text(
        "SELECT id, entry FROM audit_entries WHERE "
        + " OR ".join(f"{types[key]} NOT IN ('text', 'null')" for key in KEYS)
        + " OR (instr(entry, '\\u0000') > 0 AND ("
        + " OR ".join(f"{types[key]} IS NOT NULL" for key in KEYS) + "))")).all()
    for row_id, stored in rest:
        reason, purpose = document_fields(json.loads(stored))
        connection.execute(sa.text("UPDATE audit_entries SET reason = :reason, "
                                   "purpose = :purpose WHERE id = :id"),
                           {"reason": reason, "purpose": purpose, "id": row_id})


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("DROP INDEX IF EXISTS ix_audit_entries_fts")
    for key in KEYS:
        op.add_column("audit_entries", sa.Column(key, sa.Text(), nullable=True))
    if postgresql:
        _backfill_postgresql()
        _pg_text_index("{key}")
    else:
        _backfill_sqlite()
    op.drop_index("ix_audit_entries_org_id", table_name="audit_entries")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_index("ix_audit_entries_org_id", "audit_entries", ["org_id"], unique=False)
    if postgresql:
        _pg_text_index("runestone_json_text(entry, '{key}')")
    for key in KEYS:  # SQLite >= 3.35 drops a column in place (its triggers stay)
        op.execute(f"ALTER TABLE audit_entries DROP COLUMN {key}")
