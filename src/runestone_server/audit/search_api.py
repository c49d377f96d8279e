"""HTTP API of audit search: search, the story of one request, export, compliance report.

Each exists for one team (`/teams/{team_id}/audit...`, roles owner, admin and auditor; org
admins for every team of their organisation) and for a whole organisation (`/audit...`,
org admins only). The scope is settled before any filter is read, so another tenant's
entries never match; another tenant's team is "not found".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from runestone_server.audit import export
from runestone_server.audit.report import report as compliance_report
from runestone_server.audit.search import (
    MAX_PAGE,
    Filters,
    Scope,
    SearchError,
    page_query,
    search,
    story,
    utc,
)
from runestone_server.auth import AUDIT_ROLES, DB, MAX_ID, Id, Principal, Who, team_for

router = APIRouter(prefix="/api/v1", tags=["audit search"])

Text = Annotated[str | None, Query(max_length=200)]
Moment = Annotated[datetime | None, Query(description="ISO 8601; without an offset, UTC")]
REPORT_DAYS = 30


def _clean_time(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return utc(value)
    except (OverflowError, ValueError) as exc:
        raise HTTPException(400, f"{name} is out of range") from exc


def filters(since: Moment = None, until: Moment = None, runtime: Text = None,
            agent: Text = None, user: Text = None, tool: Text = None, decision: Text = None,
            rule: Text = None, approver: Text = None, kind: Text = None,
            severity: Text = None,
            request_id: Annotated[str | None, Query(max_length=64)] = None,
            q: Annotated[str | None, Query(max_length=500,
                                           description="full text: every word must occur; "
                                                       "word* is a prefix")] = None) -> Filters:
    """The filters of a search, export or report, from the query string."""
    values = {"runtime": runtime, "agent": agent, "user": user, "tool": tool,
              "decision": decision, "rule": rule, "approver": approver, "kind": kind,
              "severity": severity, "request_id": request_id, "q": q}
    for name, value in values.items():
        if value is not None and "\x00" in value:
            raise HTTPException(400, f"{name} contains a NUL character")
    return Filters(since=_clean_time(since, "since"), until=_clean_time(until, "until"),
                   **values)


SearchFilters = Annotated[Filters, Depends(filters)]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the page "
                                                                 "before")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Order = Annotated[Literal["desc", "asc"], Query(description="by time: newest first (desc)")]
RequestId = Annotated[str, Path(min_length=1, max_length=64)]
Format = Annotated[Literal["jsonl", "csv"], Query()]


class EntryOut(BaseModel):
    id: int
    team_id: int
    runtime_id: str
    seq: int
    kind: str
    request_id: str | None
    time: datetime
    tool: str | None
    decision: str | None
    severity: str | None
    rule: str | None
    agent: str | None
    user: str | None
    approver: str | None
    summary: str | None
    action_hash: str | None
    policy_hash: str | None
    hash: str


class PageOut(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None


class StoryOut(BaseModel):
    request_id: str
    timeline: list[dict[str, Any]]


def team_scope(db: DB, who: Principal, team_id: int) -> Scope:
    team = team_for(db, who, team_id, AUDIT_ROLES)
    return Scope(who.org_id, team.id)


def org_scope(who: Principal, team_id: int | None = None) -> Scope:
    if not who.user.org_admin:
        raise HTTPException(403, "searching a whole organisation needs an organisation admin")
    return Scope(who.org_id, team_id)


def _page(db: DB, scope: Scope, found: Filters, cursor: str | None, limit: int,
          order: str) -> PageOut:
    try:
        page = search(db, scope, found, cursor=cursor, limit=limit,
                      descending=order == "desc")
    except SearchError as exc:
        raise HTTPException(400, str(exc)) from exc
    return PageOut(items=[EntryOut(**item) for item in page.items],
                   next_cursor=page.next_cursor)


def _story(db: DB, scope: Scope, request_id: str) -> StoryOut:
    if "\x00" in request_id:
        raise HTTPException(400, "the request id contains a NUL character")
    timeline = story(db, scope, request_id)
    if not timeline:
        raise HTTPException(404, "no entry or event has this request id")
    return StoryOut(request_id=request_id, timeline=timeline)


def _export(request: Request, db: DB, scope: Scope, found: Filters, fmt: str,
            order: str) -> StreamingResponse:
    try:  # a bad filter is a 400 now, not a broken stream later
        page_query(db.get_bind().dialect.name, scope, found)
    except SearchError as exc:
        raise HTTPException(400, str(exc)) from exc
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"audit-{'team-' + str(scope.team_id) if scope.team_id else 'org'}-{stamp}.{fmt}"
    return StreamingResponse(
        export.stream(request.app.state.db.sessions, scope, found, fmt,
                      descending=order == "desc"),
        media_type=export.FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _report(db: DB, scope: Scope, since: datetime | None, until: datetime | None
            ) -> dict[str, Any]:
    end = _clean_time(until, "until") or datetime.now(UTC)
    start = _clean_time(since, "since")
    if start is None:
        try:
            start = end - timedelta(days=REPORT_DAYS)
        except OverflowError as exc:
            raise HTTPException(400, "until is out of range") from exc
    if start >= end:
        raise HTTPException(400, "since must be before until")
    return compliance_report(db, scope, start, end)


EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {200: {
    "description": "JSON Lines (each entry whole) or CSV (the searchable columns)",
    "content": {"application/x-ndjson": {}, "text/csv": {}}}}

# --- one team ---------------------------------------------------------------------------


@router.get("/teams/{team_id}/audit", response_model=PageOut)
def team_search(team_id: Id, who: Who, db: DB, found: SearchFilters, cursor: Cursor = None,
                limit: Limit = 50, order: Order = "desc") -> PageOut:
    """Search the team's audit entries, newest first, one keyset page at a time."""
    return _page(db, team_scope(db, who, team_id), found, cursor, limit, order)


@router.get("/teams/{team_id}/audit/requests/{request_id}", response_model=StoryOut)
def team_story(team_id: Id, request_id: RequestId, who: Who, db: DB) -> StoryOut:
    """One tool call from request to result, with the server's approval steps between."""
    return _story(db, team_scope(db, who, team_id), request_id)


@router.get("/teams/{team_id}/audit/export", response_class=StreamingResponse,
            responses=EXPORT_RESPONSES)
def team_export(request: Request, team_id: Id, who: Who, db: DB, found: SearchFilters,
                format: Format = "jsonl", order: Order = "asc") -> StreamingResponse:
    """Every entry matching the filters, streamed (oldest first unless order=desc)."""
    return _export(request, db, team_scope(db, who, team_id), found, format, order)


@router.get("/teams/{team_id}/audit/report")
def team_report(team_id: Id, who: Who, db: DB, since: Moment = None,
                until: Moment = None) -> dict[str, Any]:
    """The compliance report of the team for [since, until) (default: the last 30 days)."""
    return _report(db, team_scope(db, who, team_id), since, until)


# --- a whole organisation (org admins) --------------------------------------------------

TeamFilter = Annotated[int | None, Query(ge=1, le=MAX_ID, description="one team only")]


@router.get("/audit", response_model=PageOut)
def org_search(who: Who, db: DB, found: SearchFilters, team: TeamFilter = None,
               cursor: Cursor = None, limit: Limit = 50, order: Order = "desc") -> PageOut:
    """Search every team of the organisation."""
    return _page(db, org_scope(who, team), found, cursor, limit, order)


@router.get("/audit/requests/{request_id}", response_model=StoryOut)
def org_story(request_id: RequestId, who: Who, db: DB) -> StoryOut:
    return _story(db, org_scope(who), request_id)


@router.get("/audit/export", response_class=StreamingResponse, responses=EXPORT_RESPONSES)
def org_export(request: Request, who: Who, db: DB, found: SearchFilters,
               team: TeamFilter = None, format: Format = "jsonl",
               order: Order = "asc") -> StreamingResponse:
    return _export(request, db, org_scope(who, team), found, format, order)


@router.get("/audit/report")
def org_report(who: Who, db: DB, team: TeamFilter = None, since: Moment = None,
               until: Moment = None) -> dict[str, Any]:
    return _report(db, org_scope(who, team), since, until)
