"""Audit in the browser: search with the API's filters (keyset pages), the story of one tool
call (request → decision → approval → execution → result, runtime and server side), chain
status per runtime, and export buttons.

Scopes, filters, paging and exports are `runestone_server.audit` code (search, story,
export): this module only turns a query string into them and renders the result.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from runestone_server.audit import export
from runestone_server.audit.models import AuditChain
from runestone_server.audit.search import Filters, Scope, SearchError, search, story
from runestone_server.audit.search_api import filters as api_filters
from runestone_server.auth import AUDIT_ROLES, DB, MAX_ID, team_for
from runestone_server.models import Team
from runestone_server.web import forms
from runestone_server.web.overview import teams_with
from runestone_server.web.render import PageRoute, Signed, Viewer, page

router = APIRouter(route_class=PageRoute)
TEXT = ("runtime", "agent", "user", "tool", "decision", "rule", "approver", "kind",
        "severity", "request_id", "q")
PAGE = 50
REPORT_DAYS = 30


def _moment(value: str, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: a date and time like 2026-11-25T13:00") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_filters(request: Request) -> Filters:
    """The search form's fields; empty fields are no filter. Checked by the API's own
    `filters` (lengths are bounded here first)."""
    query = request.query_params
    values: dict[str, Any] = {}
    for name in TEXT:
        value = query.get(name, "").strip()
        limit = 500 if name == "q" else 64 if name == "request_id" else 200
        if len(value) > limit:
            raise HTTPException(400, f"{name}: at most {limit} characters")
        values[name] = value or None
    return api_filters(since=_moment(query.get("since", ""), "since"),
                       until=_moment(query.get("until", ""), "until"), **values)


def _team(request: Request) -> int | None:
    raw = request.query_params.get("team", "")
    if not raw:
        return None
    team = forms.whole_number(raw, 1, MAX_ID)
    if team is None:
        raise HTTPException(404, "no such team")
    return team


def scopes(db: DB, viewer: Viewer, team: int | None) -> list[Scope]:
    """Where this viewer may search: one team (with an audit role, as the API), the whole
    organisation for an org admin, else each team where they hold an audit role."""
    who = viewer.principal
    if team is not None:
        return [Scope(who.org_id, team_for(db, who, team, AUDIT_ROLES).id)]
    if viewer.user.org_admin:
        return [Scope(who.org_id, None)]
    return [Scope(who.org_id, t) for t in teams_with(db, viewer, AUDIT_ROLES)]


def _search_scope(db: DB, viewer: Viewer, team: int | None) -> Scope:
    found = scopes(db, viewer, team)
    if not found:
        raise HTTPException(403, "the audit needs an auditor, admin or owner role in a team")
    return found[0]


@router.get("/audit")
def audit(request: Request, viewer: Signed, db: DB) -> Response:
    team = _team(request)
    found = read_filters(request)
    cursor = request.query_params.get("cursor", "")[:200] or None
    choices = scopes(db, viewer, None) if team is None else []
    scope = _search_scope(db, viewer, team)
    if team is None and scope.team_id is not None:
        team = scope.team_id  # an auditor of some teams searches their first by default
    error = ""
    try:
        result = search(db, scope, found, cursor=cursor, limit=PAGE)
    except SearchError as exc:
        result, error = None, str(exc)
    params = {**found.as_params(), **({"team": str(team)} if team else {})}
    chains = list(db.scalars(select(AuditChain).where(
        AuditChain.org_id == viewer.principal.org_id,
        *([AuditChain.team_id == scope.team_id] if scope.team_id else []))
        .order_by(AuditChain.runtime_id)))
    team_names = dict(db.execute(select(Team.id, Team.name).where(
        Team.org_id == viewer.principal.org_id)).all())
    allowed = {s.team_id for s in choices} if choices else {team}
    return page(request, "audit.html", viewer, result=result, error=error,
                filters=found, params=params, team=team, chains=chains,
                teams={i: n for i, n in team_names.items()
                       if viewer.user.org_admin or i in allowed},
                org_wide=scope.team_id is None,
                next_link=("/audit?" + urlencode({**params, "cursor": result.next_cursor})
                           if result and result.next_cursor else ""),
                export_query=urlencode(params), status=400 if error else 200)


@router.get("/audit/export")
def audit_export(request: Request, viewer: Signed, db: DB) -> Response:
    fmt = request.query_params.get("format", "jsonl")
    if fmt not in export.FORMATS:
        raise HTTPException(400, "format: jsonl or csv")
    team = _team(request)
    scope = _search_scope(db, viewer, team)
    found = read_filters(request)
    try:
        search(db, scope, found, limit=1)  # a bad filter is a page now, not a broken stream
    except SearchError as exc:
        raise HTTPException(400, str(exc)) from exc
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"audit-{'team-' + str(scope.team_id) if scope.team_id else 'org'}-{stamp}.{fmt}"
    return StreamingResponse(
        export.stream(request.app.state.db.sessions, scope, found, fmt),
        media_type=export.FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/audit/report")
def compliance(request: Request, viewer: Signed, db: DB) -> Response:
    """The compliance report for a period (default: the last 30 days), as the API gives
    it: who approved what, denied actions, policy changes, chain integrity per runtime."""
    from runestone_server.audit.report import report

    team = _team(request)
    scope = _search_scope(db, viewer, team)
    until = _moment(request.query_params.get("until", ""), "until") or datetime.now(UTC)
    since = _moment(request.query_params.get("since", ""), "since") or \
        until - timedelta(days=REPORT_DAYS)
    if since >= until:
        raise HTTPException(400, "since must be before until")
    names = dict(db.execute(select(Team.id, Team.name).where(
        Team.org_id == viewer.principal.org_id)).all())
    return page(request, "report.html", viewer, r=report(db, scope, since, until),
                team=scope.team_id, team_name=names.get(scope.team_id or 0), since=since,
                until=until)


@router.get("/audit/calls/{request_id}")
def call_story(request_id: str, request: Request, viewer: Signed, db: DB) -> Response:
    if not 1 <= len(request_id) <= 64 or "\x00" in request_id:
        raise HTTPException(404, "no such tool call")
    timeline: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for scope in scopes(db, viewer, _team(request)):
        for item in story(db, scope, request_id):
            key = (item["source"], item["id"])
            if key not in seen:
                seen.add(key)
                timeline.append(item)
    if not timeline:
        raise HTTPException(404, "no audit entry or event has this request id (or it is "
                                 "in a team whose audit you cannot read)")
    timeline.sort(key=lambda i: (datetime.fromisoformat(i["time"]), i["source"] == "server"))
    return page(request, "call.html", viewer, request_id=request_id, timeline=timeline,
                stage=stage)


def stage(item: dict[str, Any]) -> str:
    """Which step of a tool call's life an entry or event is."""
    kind = str(item.get("kind") or "")
    if item["source"] == "server":
        return "approval" if kind.startswith("approval.") else kind.split(".")[0]
    return {"request": "request", "decision": "decision", "approval": "approval",
            "execution": "execution", "exec": "execution", "result": "result"}.get(kind, kind)
