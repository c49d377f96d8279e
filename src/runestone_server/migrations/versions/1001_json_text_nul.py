"""Harden: an audit entry or server event whose JSON holds `\\u0000` no longer stalls ingest.

PostgreSQL refuses to turn a `json` text holding the escape `\\u0000` (a NUL character) into
`text`, wherever in the document the escape is: `entry ->> 'reason'` then fails, and with
it the full-text index expression of every row being inserted. A batch carrying one such
entry (an agent's tool input with a NUL in it is enough) was refused on every retry, so that
runtime's shipping stopped for good. The expressions now read a field through
`runestone_json_text(doc, key)`: the field as `->>` gives it, or NULL when the document
cannot be read as text (the entry is stored and verifies as before; only those two fields
are missing from its search document, while its summary, which ingest derives without
NULs, stays searchable). The check is a `strpos` on the document's text, so rows without
the escape pay no exception block. The same goes for the server events' `request_id`
index (migration 0103_audit_story). SQLite reads such JSON without complaint and is left
as it is. `fulltext.PG_DOCUMENT` and `search.event_request_id` repeat these expressions.

Revision ID: 1001_json_text_nul
Revises: 0802_audit_purpose_search (the full-text document it rebuilds)
Depends on: 0103_audit_story (the server events' index it rebuilds)
Create Date: 2026-12-06 22:00:00
"""

from __future__ import annotations

from alembic import op

revision = "1001_json_text_nul"
down_revision = "0802_audit_purpose_search"
branch_labels = None
depends_on = "0103_audit_story"

_FIELDS = ("summary", "tool", "rule", "agent", '"user"', "approver", "runtime_id")

FUNCTIONS = (
    # The slow path: only for documents whose text holds the escape.
    "CREATE OR REPLACE FUNCTION runestone_json_text_guarded(doc json, key text) RETURNS text "
    "LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$ BEGIN RETURN doc ->> key; "
    "EXCEPTION WHEN untranslatable_character THEN RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION runestone_json_text(doc json, key text) RETURNS text "
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE "
    "WHEN strpos(doc::text, '\\u0000') = 0 THEN doc ->> key "
    "ELSE runestone_json_text_guarded(doc, key) END $$",
)


def _document(read: str) -> str:
    parts = [f"coalesce({field}, '')" for field in _FIELDS]
    parts += [f"coalesce({read.format(key=key)}, '')" for key in ("reason", "purpose")]
    return ("to_tsvector('simple'::regconfig, regexp_replace("
            + " || ' ' || ".join(parts) + ", '[^[:alnum:]]+', ' ', 'g'))")


def _rebuild(read_entry: str, read_detail: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_audit_entries_fts")
    op.execute("CREATE INDEX ix_audit_entries_fts ON audit_entries USING gin "
               f"({_document(read_entry)})")
    op.execute("DROP INDEX IF EXISTS ix_server_events_request_id")
    op.execute(f"CREATE INDEX ix_server_events_request_id ON server_events (({read_detail}))")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in FUNCTIONS:
        op.execute(statement)
    _rebuild("runestone_json_text(entry, '{key}')",
             "runestone_json_text(detail, 'request_id')")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _rebuild("entry ->> '{key}'", "detail ->> 'request_id'")
    op.execute("DROP FUNCTION IF EXISTS runestone_json_text(json, text)")
    op.execute("DROP FUNCTION IF EXISTS runestone_json_text_guarded(json, text)")
