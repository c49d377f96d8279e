"""Full-text search over audit entries: SQLite FTS5 and PostgreSQL full-text, one meaning.

What is searchable is one document per entry: its summary (the command, path or URL), tool,
first rule, agent, user, approver, runtime, the decision's reason and the agent's stated
purpose (a request's `purpose`: Claude Code's `description`). Both databases see the
same words: PostgreSQL's parser would keep `/etc/passwd` as one "file" token, so the document
is first cut at every non-alphanumeric character, which is what FTS5's `unicode61` tokenizer
does; the query is cut the same way here. A search is all of its words (AND); `word*` is a
prefix. Anything else in the query is not syntax, so no input can break the statement.

- SQLite: a contentless FTS5 table (`audit_entries_fts`, rowid = entry id). New rows are
  indexed in batches (`catch_up`: every worker tick, and before any text search, so a search
  never misses a stored entry); `audit_entries_fts_state.indexed` is the highest id indexed.
  A per-row insert trigger was tried and measured: FTS5 flushes its pending terms at every
  trigger statement, ~300 us an entry, 25x a batched insert. Deletes (retention) of indexed
  rows are mirrored at once by a trigger.
- PostgreSQL: a GIN index over the `tsvector` expression (no `tsvector` column, so the table
  stays what the models say); the query repeats the expression verbatim so the planner uses
  it. The expression reads columns only: the reason and purpose are the `reason` and
  `purpose` columns ingest fills (`ingest.document_fields`, the very text the expression
  used to read from the `json` text, which cost two parses of the whole entry per inserted
  row, ~8% of the database's work per entry).
- SQLite's document still reads the reason and purpose from the entry (`json_extract`): its
  text index is built in batches off the ingest path, and switching it to the columns
  would mean re-indexing every row (its contentless table must be told the exact text it
  indexed to forget a row).

Both objects are created by migration `0102_audit_search` (the document as it is now by
`0802_audit_purpose_search` and, on PostgreSQL, `1001_json_text_nul` and
`1101_audit_text_columns`); they are not in the models, so the schema comparison skips them
by name (`include_name`).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, literal_column, select, table, text

from runestone_server.audit.models import AuditEntry
from runestone_server.audit.search_schema import PG_APPROVER_INDEX
from runestone_server.db import Database
from runestone_server.worker import task

FTS_TABLE = "audit_entries_fts"
PG_INDEX = "ix_audit_entries_fts"
# server_events by detail.request_id (migration 0103_audit_story; used by search.story)
EVENTS_REQUEST_INDEX = "ix_server_events_request_id"
MAX_WORDS = 16
MAX_WORD = 100

# The document, exactly as in migration 1101_audit_text_columns (index and query agree).
PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace("
    "coalesce(summary, '') || ' ' || coalesce(tool, '') || ' ' || coalesce(rule, '') || ' ' "
    "|| coalesce(agent, '') || ' ' || coalesce(\"user\", '') || ' ' || coalesce(approver, '') "
    "|| ' ' || coalesce(runtime_id, '') || ' ' || coalesce(reason, '') || ' ' || "
    "coalesce(purpose, ''), '[^[:alnum:]]+', ' ', 'g'))"
)

CATCH_UP_BATCH = 50_000
COMMON_AT = 2_000


def sqlite_document(row: str) -> str:
    """The SQLite document of one row (as in migration 0102_audit_search's triggers)."""
    return (f"coalesce({row}.summary, '') || ' ' || coalesce({row}.tool, '') || ' ' || "
            f"coalesce({row}.rule, '') || ' ' || coalesce({row}.agent, '') || ' ' || "
            f"coalesce({row}.\"user\", '') || ' ' || coalesce({row}.approver, '') || ' ' || "
            f"coalesce({row}.runtime_id, '') || ' ' || "
            f"coalesce(json_extract({row}.entry, '$.reason'), '') || ' ' || "
            f"coalesce(json_extract({row}.entry, '$.purpose'), '')")


def _catch_up_once(connection: Connection) -> int:
    """Index the next batch of new rows; how many ids it covered. The first statement is a
    write, so the transaction holds SQLite's write lock before it reads the high-water mark:
    two servers (or a search and the worker) never index the same rows twice."""
    connection.execute(text(f"UPDATE {FTS_TABLE}_state SET indexed = indexed WHERE id = 1"))
    indexed = connection.scalar(text(f"SELECT indexed FROM {FTS_TABLE}_state WHERE id = 1"))
    top = connection.scalar(text("SELECT max(id) FROM audit_entries")) or 0
    if indexed is None or top == indexed:
        return 0
    if top < indexed:
        # Every row above `top` is gone (retention removes the oldest first, so only a
        # table emptied entirely gets here) and SQLite hands out ids from top + 1 again.
        indexed = 0 if connection.scalar(text(f"SELECT count(*) FROM {FTS_TABLE}")) == 0 \
            else top
    upto = min(top, indexed + CATCH_UP_BATCH)
    connection.execute(text(
        f"INSERT INTO {FTS_TABLE}(rowid, body) SELECT a.id, {sqlite_document('a')} "
        "FROM audit_entries AS a WHERE a.id > :low AND a.id <= :high"),
        {"low": indexed, "high": upto})
    connection.execute(text(f"UPDATE {FTS_TABLE}_state SET indexed = :upto WHERE id = 1"),
                       {"upto": upto})
    return upto - indexed


def catch_up(engine: Engine) -> int:
    """Bring the SQLite text index up to the newest row (no-op on PostgreSQL, whose index is
    part of every insert); how many ids were covered."""
    if engine.dialect.name != "sqlite":
        return 0
    with engine.connect() as connection:  # the usual case, nothing new: no write lock taken
        indexed = connection.scalar(text(f"SELECT indexed FROM {FTS_TABLE}_state WHERE id = 1"))
        top = connection.scalar(text("SELECT max(id) FROM audit_entries")) or 0
    if indexed is None or indexed == top:
        return 0
    total = 0
    while True:
        with engine.begin() as connection:
            done = _catch_up_once(connection)
        total += done
        if done < CATCH_UP_BATCH:
            return total


@task("audit-fulltext")
def index_new_entries(db: Database) -> None:
    catch_up(db.engine)


_WORD = re.compile(r"[^\W_]+\*?")


class TextQueryError(ValueError):
    """The text query has no word to search for."""


def words(query: str) -> list[tuple[str, bool]]:
    """The query's words, lower-cased, each with whether it is a prefix (`word*`)."""
    found = []
    for raw in _WORD.findall(query)[:MAX_WORDS]:
        prefix = raw.endswith("*")
        found.append((raw.rstrip("*")[:MAX_WORD].lower(), prefix))
    if not found:
        raise TextQueryError("the text search has no word in it (letters or digits)")
    return found


def fts5_query(query: str) -> str:
    """`"word" "pre"*`: FTS5 phrases, ANDed; the words are alphanumeric, so quoting is safe."""
    return " ".join(f'"{w}"' + ("*" if prefix else "") for w, prefix in words(query))


def tsquery(query: str) -> str:
    """`word & pre:*` for `to_tsquery('simple', ...)`."""
    return " & ".join(w + (":*" if prefix else "") for w, prefix in words(query))


def common(engine: Engine, query: str) -> bool:
    """SQLite: does the query match so many entries that walking the time index and checking
    each row is quicker than fetching and sorting every match? (PostgreSQL's planner knows
    this from its statistics of the index.) Counting stops at COMMON_AT matches."""
    if engine.dialect.name != "sqlite":
        return False
    with engine.connect() as connection:
        found = connection.scalar(text(
            f"SELECT count(*) FROM (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q "
            "LIMIT :cap)"), {"q": fts5_query(query), "cap": COMMON_AT})
    return (found or 0) >= COMMON_AT


def match(dialect: str, query: str, *, common_words: bool = False) -> ColumnElement[Any]:
    """The WHERE clause for entries whose document contains every word of `query`.

    On SQLite, a rare query drives the search from the text index (fetch the matches, sort
    them by time); a common one (`common_words`) is checked row by row while the page walks
    the time index, which stops after one page."""
    if dialect == "sqlite":
        if common_words:
            return text(f"EXISTS (SELECT 1 FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :fts_query "
                        f"AND {FTS_TABLE}.rowid = audit_entries.id)").bindparams(
                fts_query=fts5_query(query))
        hits = select(literal_column("rowid")).select_from(table(FTS_TABLE)).where(
            text(f"{FTS_TABLE} MATCH :fts_query").bindparams(fts_query=fts5_query(query)))
        return AuditEntry.id.in_(hits)
    if dialect == "postgresql":
        return text(f"{PG_DOCUMENT} @@ to_tsquery('simple'::regconfig, :fts_query)").bindparams(
            fts_query=tsquery(query))
    raise TextQueryError(f"full-text search is not available on {dialect}")


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Alembic's filter: leave the full-text objects (not in the models) out of comparisons.

    FTS5 creates the virtual table and its shadow tables (`_data`, `_idx`, `_docsize`,
    `_config`) beside our high-water table (`_state`); PostgreSQL has the expression index;
    both have the expression index of server events by request id; PostgreSQL has the
    approver names index (`search_schema.PG_APPROVER_INDEX`). Nothing else is skipped."""
    if name is None:
        return True
    if type_ == "table":
        return not (name == FTS_TABLE or name.startswith(FTS_TABLE + "_"))
    if type_ == "index":
        return name not in (PG_INDEX, EVENTS_REQUEST_INDEX, PG_APPROVER_INDEX)
    return True
