"""Audit search: the query for one page of a tenant's entries, and the story of one request.

Pages are keyset pages: ordered by `(time, id)` and continued from an opaque cursor that
holds the last row's `(time, id)`, never an OFFSET. A page therefore costs the same on the
first and on the millionth row, and stays stable while new entries arrive (they sort before
the cursor and do not shift what comes after it). Every query starts from the scope (the
organisation, and the team unless an org admin searches the whole organisation), so another
tenant's rows cannot match whatever the filters say.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, func, literal, or_, select, text
from sqlalchemy.orm import Session

from runestone_server.audit import fulltext
from runestone_server.audit.models import AuditEntry
from runestone_server.audit.search_schema import PG_APPROVER_NAMES
from runestone_server.models import ServerEvent

MAX_PAGE = 500

# Columns a search returns (the whole runtime entry is left out: it can be large).
LISTED = (AuditEntry.id, AuditEntry.team_id, AuditEntry.runtime_id, AuditEntry.seq,
          AuditEntry.kind, AuditEntry.request_id, AuditEntry.time, AuditEntry.tool,
          AuditEntry.decision, AuditEntry.severity, AuditEntry.rule, AuditEntry.agent,
          AuditEntry.user, AuditEntry.approver, AuditEntry.summary, AuditEntry.action_hash,
          AuditEntry.policy_hash, AuditEntry.hash)


class SearchError(ValueError):
    """A search that cannot be run as asked (a bad cursor, a text query without words)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose entries: one organisation, and one team of it unless `team_id` is None."""

    org_id: int
    team_id: int | None


@dataclass(frozen=True, slots=True)
class Filters:
    """Every filter is optional; all given ones must hold (AND). Exact values except `q`
    (full text) and the time range (`since` inclusive, `until` exclusive)."""

    since: datetime | None = None
    until: datetime | None = None
    runtime: str | None = None
    agent: str | None = None
    user: str | None = None
    tool: str | None = None
    decision: str | None = None
    rule: str | None = None
    approver: str | None = None
    kind: str | None = None
    severity: str | None = None
    request_id: str | None = None
    q: str | None = None

    def as_params(self) -> dict[str, str]:
        """The filters as query parameters (for links to the next page or an export)."""
        out = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                out[item.name] = value.isoformat() if isinstance(value, datetime) else value
        return out


EXACT = {"runtime": AuditEntry.runtime_id, "agent": AuditEntry.agent,
         "user": AuditEntry.user, "tool": AuditEntry.tool, "decision": AuditEntry.decision,
         "rule": AuditEntry.rule, "approver": AuditEntry.approver, "kind": AuditEntry.kind,
         "severity": AuditEntry.severity, "request_id": AuditEntry.request_id}


def approver_matches(dialect: str, name: str) -> Any:
    """Entries approved by `name`: the stored approver exactly, or `name` among the listed
    `source:a,b,c` (how a runtime records the control plane's approvers); searching for
    alice found only the whole string `server:alice,bob`. A plain substring search (no LIKE,
    whose case rules differ between SQLite and PostgreSQL and whose wildcards a name could
    hold), after the first colon, between commas."""
    position = func.instr if dialect == "sqlite" else func.strpos
    column = AuditEntry.approver
    listed = literal(",") + func.substr(column, position(column, ":") + 1) + literal(",")
    found = position(listed, f",{name},") > 0
    if dialect == "postgresql":
        # An index can serve neither arm of the OR as written, so a team's page walked the
        # team's history until it had found 51 rows (issue 20). The listed names' array
        # containing the name's comma-separated parts is implied by `found` (a match starts
        # and ends at commas), so adding it finds the same rows, and PostgreSQL answers it
        # from the GIN index of migration 1102; the exact arm uses the (org, approver)
        # B-tree. The expression is written as in the index (literals, not parameters).
        found = and_(text(f"audit_entries.approver IS NOT NULL AND {PG_APPROVER_NAMES} @> "
                          "string_to_array(:approver_name, ',')").bindparams(
                              approver_name=name), found)
    return or_(column == name, found)


def utc(moment: datetime) -> datetime:
    """Aware UTC; a naive time is taken as UTC (SQLite hands stored times back naive)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_cursor(time: datetime, row_id: int) -> str:
    raw = f"{utc(time).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, row_id = raw.partition("|")
        position = utc(datetime.fromisoformat(moment)), int(row_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise SearchError("the cursor is not one this server handed out") from exc
    if not 0 <= position[1] < 2**63:
        raise SearchError("the cursor is not one this server handed out")
    return position


def scoped(scope: Scope) -> list[Any]:
    where = [AuditEntry.org_id == scope.org_id]
    if scope.team_id is not None:
        where.append(AuditEntry.team_id == scope.team_id)
    return where


def conditions(dialect: str, scope: Scope, filters: Filters, *, common_words: bool = False
               ) -> list[Any]:
    """The WHERE clauses: the scope first, then every filter given."""
    where = scoped(scope)
    for name, column in EXACT.items():
        value = getattr(filters, name)
        if value is not None:
            where.append(approver_matches(dialect, value) if name == "approver"
                         else column == value)
    if filters.since is not None:
        where.append(AuditEntry.time >= utc(filters.since))
    if filters.until is not None:
        where.append(AuditEntry.time < utc(filters.until))
    if filters.q:
        try:
            where.append(fulltext.match(dialect, filters.q, common_words=common_words))
        except fulltext.TextQueryError as exc:
            raise SearchError(str(exc)) from exc
    return where


def after(cursor: tuple[datetime, int], descending: bool) -> Any:
    """Rows strictly past the cursor in the page order. The plain bound on `time` comes
    first so every database uses it as the index range; the OR only breaks ties."""
    moment, row_id = cursor
    if descending:
        return and_(AuditEntry.time <= moment,
                    or_(AuditEntry.time < moment, AuditEntry.id < row_id))
    return and_(AuditEntry.time >= moment,
                or_(AuditEntry.time > moment, AuditEntry.id > row_id))


def page_query(dialect: str, scope: Scope, filters: Filters, *, cursor: str | None = None,
               limit: int = 50, descending: bool = True, columns: tuple[Any, ...] = LISTED,
               common_words: bool = False) -> Select[Any]:
    """One page (plus one row, to know whether another page follows)."""
    where = conditions(dialect, scope, filters, common_words=common_words)
    if cursor:
        where.append(after(decode_cursor(cursor), descending))
    order = (AuditEntry.time.desc(), AuditEntry.id.desc()) if descending else \
        (AuditEntry.time.asc(), AuditEntry.id.asc())
    return select(*columns).where(*where).order_by(*order).limit(limit + 1)


def steer(db: Session, scope: Scope) -> None:
    """PostgreSQL, team pages: forbid the incremental sort for this transaction.

    Rows are stored in about time order, so the planner rates walking the bare `time` index
    (filtering the team, then sorting ties by id) as cheap as the team's own `(team_id,
    time, id)` index. It is not when another team wrote the newest rows: measured on a
    million entries, 200 ms instead of a few. Without incremental sort that plan needs a
    full sort, so the team index, which yields exactly the page order, wins."""
    if scope.team_id is not None and db.get_bind().dialect.name == "postgresql":
        db.execute(text("SET LOCAL enable_incremental_sort = off"))


def _common(db: Session, q: str) -> bool:
    try:
        return fulltext.common(db.get_bind(), q)  # type: ignore[arg-type]
    except fulltext.TextQueryError as exc:
        raise SearchError(str(exc)) from exc


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def listed(row: Any) -> dict[str, Any]:
    """One search result as plain JSON-able data."""
    out = {column.key: getattr(row, column.key) for column in LISTED}
    out["time"] = utc(out["time"]).isoformat()
    return out


def search(db: Session, scope: Scope, filters: Filters, *, cursor: str | None = None,
           limit: int = 50, descending: bool = True) -> Page:
    limit = max(1, min(limit, MAX_PAGE))
    common_words = False
    if filters.q:
        fulltext.catch_up(db.get_bind())  # SQLite: index what arrived since the last tick
        common_words = _common(db, filters.q)
    query = page_query(db.get_bind().dialect.name, scope, filters, cursor=cursor,
                       limit=limit, descending=descending, common_words=common_words)
    steer(db, scope)
    rows = db.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].time, rows[-1].id) if more else None
    return Page([listed(r) for r in rows], next_cursor)


def walk(db: Session, scope: Scope, filters: Filters, *, descending: bool = False,
         batch: int = 1000) -> Iterator[AuditEntry]:
    """Every matching entry (whole), page by page: what exports stream. Memory stays one
    batch; each batch is its own keyset query, so a long export holds no cursor open."""
    dialect = db.get_bind().dialect.name
    common_words = False
    if filters.q:
        fulltext.catch_up(db.get_bind())
        common_words = _common(db, filters.q)
    cursor: str | None = None
    steer(db, scope)
    while True:
        query = page_query(dialect, scope, filters, cursor=cursor, limit=batch,
                           descending=descending, columns=(AuditEntry,),
                           common_words=common_words)
        rows = list(db.scalars(query))
        yield from rows[:batch]
        if len(rows) <= batch:
            return
        last = rows[batch - 1]
        cursor = encode_cursor(last.time, last.id)
        db.expunge_all()


def full(entry: AuditEntry) -> dict[str, Any]:
    """A stored entry with the runtime's whole entry, as exported and in a story."""
    out = listed(entry)
    out["entry"] = entry.entry
    out["received"] = utc(entry.received).isoformat()
    return out


def event_request_id(dialect: str, request_id: str) -> Any:
    """`detail.request_id = :id`, written exactly as migrations 0103_audit_story (SQLite) and
    1001_json_text_nul (PostgreSQL) indexed it."""
    if dialect == "sqlite":
        expression = "json_extract(server_events.detail, '$.request_id')"
    else:
        expression = "runestone_json_text(server_events.detail, 'request_id')"
    return text(f"{expression} = :story_request_id").bindparams(story_request_id=request_id)


def story(db: Session, scope: Scope, request_id: str) -> list[dict[str, Any]]:
    """One tool call across runtime and server, in time order: the runtime's entries with
    this request id (request, decision, approval, execution, result) and the server's events
    about it (routing, escalation, votes), each marked with where it comes from."""
    entries = db.scalars(select(AuditEntry).where(
        *scoped(scope), AuditEntry.request_id == request_id).order_by(
        AuditEntry.time, AuditEntry.id))
    events_where = [ServerEvent.org_id == scope.org_id,
                    event_request_id(db.get_bind().dialect.name, request_id)]
    if scope.team_id is not None:
        events_where.append(ServerEvent.team_id == scope.team_id)
    events = db.scalars(select(ServerEvent).where(*events_where).order_by(
        ServerEvent.created, ServerEvent.id))
    timeline = [{"source": "runtime", **full(e)} for e in entries]
    timeline += [{"source": "server", "id": ev.id, "time": utc(ev.created).isoformat(),
                  "kind": ev.kind, "actor": ev.actor, "team_id": ev.team_id,
                  "detail": ev.detail} for ev in events]
    timeline.sort(key=lambda item: (datetime.fromisoformat(item["time"]),
                                    item["source"] == "server"))
    return timeline
