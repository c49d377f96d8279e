"""The approvals inbox (live: a small script re-fetches its rows) and the approval page
where links from notifications land: exactly what will run, why it asked, who asked from
where, the escalation levels, the votes and the timeline; approve or deny with a reason.

All decisions go through `runestone_server.approvals.service` (the API's own code): who
may vote, quorum, no self-approval, one vote per level, conditional state changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import select

from runestone_server.approvals import service
from runestone_server.approvals.models import SEVERITIES, ApprovalRequest
from runestone_server.auth import DB, MAX_ID, Id
from runestone_server.models import Team
from runestone_server.web import csrf, forms
from runestone_server.web.breakdown import analyse
from runestone_server.web.render import PageRoute, Signed, Viewer, page, see_other

router = APIRouter(route_class=PageRoute)
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    seconds = int((now - (moment if moment.tzinfo else moment.replace(tzinfo=UTC)))
                  .total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d"


def _rows(db: DB, viewer: Viewer, severity: str, tool: str, team: int | None
          ) -> list[ApprovalRequest]:
    rows = service.inbox(db, viewer.principal)
    if severity in SEVERITY_RANK:
        rows = [r for r in rows if SEVERITY_RANK.get(r.severity, 99) >= SEVERITY_RANK[severity]]
    if tool:
        rows = [r for r in rows if tool.casefold() in r.tool.casefold()]
    if team is not None:
        rows = [r for r in rows if r.team_id == team]
    return rows


def _context(db: DB, viewer: Viewer, severity: str, tool: str, team: int | None
             ) -> dict[str, Any]:
    rows = _rows(db, viewer, severity, tool, team)
    names = dict(db.execute(select(Team.id, Team.name).where(
        Team.org_id == viewer.principal.org_id)).all())
    return {"rows": rows, "teams": names, "now": datetime.now(UTC), "age": age,
            "filters": {"severity": severity, "tool": tool, "team": team},
            "severities": SEVERITIES}


Severity = Query(default="", max_length=20)
ToolFilter = Query(default="", max_length=200)
TeamFilter = Query(default="", max_length=10, description="a team id; empty: any")


def _team(raw: str) -> int | None:
    """The filter form sends `team=` for "any"."""
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
        raise HTTPException(404, "no such team")
    return int(raw)


@router.get("/approvals")
def inbox(request: Request, viewer: Signed, db: DB, severity: str = Severity,
          tool: str = ToolFilter, team: str = TeamFilter) -> Response:
    return page(request, "inbox.html", viewer,
                **_context(db, viewer, severity, tool, _team(team)))


@router.get("/approvals/rows")
def inbox_rows(request: Request, viewer: Signed, db: DB, severity: str = Severity,
               tool: str = ToolFilter, team: str = TeamFilter) -> Response:
    """The inbox's rows alone, for the live script (same template, same escaping)."""
    return page(request, "inbox_rows.html", viewer,
                **_context(db, viewer, severity, tool, _team(team)))


def tool_input(stored: object) -> tuple[dict[str, Any], str]:
    """(the tool's input, its working directory) from what the runtime sent: the action's
    identity (`{"tool", "input", "cwd", ...}`, what runtimes send) or a bare tool input."""
    data = stored if isinstance(stored, dict) else {}
    if isinstance(data.get("input"), dict) and "tool" in data:
        cwd = data.get("cwd")
        return data["input"], cwd if isinstance(cwd, str) else ""
    cwd = data.get("cwd")
    return data, cwd if isinstance(cwd, str) else ""


def _detail(request: Request, viewer: Viewer, db: DB, approval_id: int, *,
            error: str = "", status: int = 200) -> Response:
    approval = service.load(db, viewer.principal, approval_id)
    info = service.describe(db, viewer.principal, approval)
    data, cwd = tool_input(approval.input)
    breakdown = analyse(approval.tool, data, cwd)
    team = db.get(Team, approval.team_id)
    requester = str(approval.requester.get("user") or "")
    own = requester and requester.casefold() == viewer.user.username.casefold()
    my_votes = [v for v in info["votes"] if v["user"] == viewer.user.username
                and v["level"] == approval.level]
    return page(request, "approval.html", viewer, a=info, breakdown=breakdown,
                team=team, own=own, voted=bool(my_votes), error=error, status=status,
                now=datetime.now(UTC), age=age)


@router.get("/approvals/{approval_id}")
def approval_page(approval_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    return _detail(request, viewer, db, approval_id)


@router.post("/approvals/{approval_id}/vote")
async def vote(approval_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    choice = form.get("vote", "")
    try:
        service.vote(db, viewer.principal, approval_id, choice, form.get("reason", "")[:2000])
    except HTTPException as exc:
        db.rollback()
        if exc.status_code == 404:
            raise
        return _detail(request, viewer, db, approval_id, error=str(exc.detail),
                       status=exc.status_code)
    return see_other(f"/approvals/{approval_id}")
