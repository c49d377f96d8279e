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
from runestone_server.approvals.models import MAX_SCOPE_MINUTES, SEVERITIES, ApprovalRequest
from runestone_server.approvals.purpose import LABEL as PURPOSE_LABEL
from runestone_server.auth import DB, MANAGE_ROLES, MAX_ID, READ_ROLES, Id, team_for
from runestone_server.models import Membership, Team, User
from runestone_server.web import csrf, forms
from runestone_server.web.breakdown import analyse
from runestone_server.web.policies import parse_selector
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


def _team_names(db: DB, viewer: Viewer) -> dict[int, str]:
    """The teams this viewer may filter by: their own (any role) and those of requests in
    their inbox (routed to their groups, or delegated to them); every team for an org
    admin. Listing every team of the organisation to anyone told them what exists."""
    query = select(Team.id, Team.name).where(Team.org_id == viewer.principal.org_id)
    if not viewer.user.org_admin:
        mine = set(db.scalars(select(Membership.team_id).where(
            Membership.org_id == viewer.principal.org_id,
            Membership.user_id == viewer.user.id)))
        mine.update(r.team_id for r in service.inbox(db, viewer.principal))
        query = query.where(Team.id.in_(mine))
    return dict(db.execute(query).all())


def _context(db: DB, viewer: Viewer, severity: str, tool: str, team: int | None
             ) -> dict[str, Any]:
    rows = _rows(db, viewer, severity, tool, team)
    names = _team_names(db, viewer)
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
    team = forms.whole_number(raw, 1, MAX_ID)
    if team is None:
        raise HTTPException(404, "no such team")
    return team


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
                purpose_label=PURPOSE_LABEL,
                max_minutes=MAX_SCOPE_MINUTES,
                now=datetime.now(UTC), age=age)


@router.get("/approvals/{approval_id}")
def approval_page(approval_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    return _detail(request, viewer, db, approval_id)


@router.post("/approvals/{approval_id}/vote")
async def vote(approval_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    """Approve or deny with a reason and, for an approve, its scope: this action once, or
    the request's rules in the requesting session for some minutes."""
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    choice = form.get("vote", "")
    scope = form.get("scope", "once") or "once"
    raw_minutes = form.get("minutes", "30").strip() or "30"
    try:
        minutes = forms.whole_number(raw_minutes, 0, 999_999)
        if minutes is None:
            raise HTTPException(400, "minutes: a whole number")
        service.vote(db, viewer.principal, approval_id, choice, form.get("reason", "")[:2000],
                     scope, minutes)
    except HTTPException as exc:
        db.rollback()
        if exc.status_code == 404:
            raise
        return _detail(request, viewer, db, approval_id, error=str(exc.detail),
                       status=exc.status_code)
    return see_other(f"/approvals/{approval_id}")


# --- who approves: groups, routes with escalation levels, delegations --------------------

def _approvers_page(request: Request, viewer: Viewer, db: DB, team_id: int, *,
                    error: str = "", status: int = 200) -> Response:
    from runestone_server.approvals import config
    from runestone_server.web.teams import role_in

    team = team_for(db, viewer.principal, team_id, READ_ROLES)
    groups = config.list_groups(db, viewer.principal, team.id)
    routes = config.list_routes(db, viewer.principal, team.id)
    users = list(db.scalars(select(User.username).where(
        User.org_id == viewer.principal.org_id).order_by(User.username)))
    return page(request, "approvers.html", viewer, team=team, groups=groups, routes=routes,
                group_names={g["id"]: g["name"] for g in groups}, users=users,
                can_manage=role_in(db, viewer.user, team.id) in MANAGE_ROLES,
                severities=SEVERITIES, error=error, status=status)


@router.get("/teams/{team_id}/approvers")
def approvers(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    return _approvers_page(request, viewer, db, team_id)


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()][:500]


@router.post("/teams/{team_id}/approver-groups")
async def save_group(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    from runestone_server.approvals import config

    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    team_for(db, viewer.principal, team_id, MANAGE_ROLES)
    name = form.get("name", "").strip()[:200]
    try:
        if not name:
            raise HTTPException(400, "a group needs a name")
        # The form edits members only: the group's channels (set through the API) stay.
        config.save_group(db, viewer.principal, team_id, name, _names(form.get("members", "")),
                          None)
    except HTTPException as exc:
        return _refused(request, viewer, db, team_id, exc)
    return see_other(f"/teams/{team_id}/approvers")


@router.post("/teams/{team_id}/approver-groups/{group_id}/delete")
async def delete_group(team_id: Id, group_id: Id, request: Request, viewer: Signed,
                       db: DB) -> Response:
    """Delete a group no route names; while routes still use it, the approvers page comes
    back with the API's 409 reason, which names them."""
    from runestone_server.approvals import config

    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    team_for(db, viewer.principal, team_id, MANAGE_ROLES)
    try:
        config.delete_group(db, viewer.principal, team_id, group_id)
    except HTTPException as exc:
        return _refused(request, viewer, db, team_id, exc)
    return see_other(f"/teams/{team_id}/approvers")


def _refused(request: Request, viewer: Viewer, db: DB, team_id: int,
             exc: HTTPException) -> Response:
    """A refused change shows the approvers page again with the reason; a team the viewer
    may not see stays a 404."""
    db.rollback()
    if exc.status_code == 404 and "team" in str(exc.detail):
        raise exc
    return _approvers_page(request, viewer, db, team_id, error=str(exc.detail),
                           status=exc.status_code)


@router.post("/teams/{team_id}/approval-routes")
async def create_route(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    """A route with up to three escalation levels (a level without a group is left out)."""
    from runestone_server.approvals import config

    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    team_for(db, viewer.principal, team_id, MANAGE_ROLES)
    try:
        steps = []
        for n in (1, 2, 3):
            group = form.get(f"group{n}", "")
            if not group:
                continue
            group_id = forms.whole_number(group, 1, MAX_ID)
            timeout = forms.whole_number(form.get(f"timeout{n}") or "600", 1, 30 * 86400)
            quorum = forms.whole_number(form.get(f"quorum{n}") or "1", 1, 50)
            if group_id is None or timeout is None or quorum is None:
                raise HTTPException(400, f"level {n}: a group, 1 s to 30 days, quorum 1-50")
            steps.append(config.LevelSpec(group_id, timeout, quorum))
        if not steps:
            raise HTTPException(400, "a route needs at least one level")
        severity = form.get("min_severity", "low")
        if severity not in SEVERITIES:
            raise HTTPException(400, "unknown severity")
        priority = forms.whole_number(form.get("priority") or "100", 0, 1_000_000)
        if priority is None:
            raise HTTPException(400, "priority: a whole number from 0 to 1000000")
        config.create_route(db, viewer.principal, team_id,
                            name=form.get("name", "").strip()[:200] or "route",
                            priority=priority,
                            labels=parse_selector(form.get("labels", "")),
                            tool=form.get("tool", "*")[:200] or "*",
                            rule=form.get("rule", "*")[:200] or "*",
                            min_severity=severity, steps=steps)
    except ValueError:
        db.rollback()
        return _approvers_page(request, viewer, db, team_id, status=400,
                               error="timeouts, quorums and priority are whole numbers")
    except HTTPException as exc:
        return _refused(request, viewer, db, team_id, exc)
    return see_other(f"/teams/{team_id}/approvers")


def _delegations_page(request: Request, viewer: Viewer, db: DB, *, error: str = "",
                      status: int = 200) -> Response:
    from runestone_server.approvals import config

    users = [u for u in db.scalars(select(User.username).where(
        User.org_id == viewer.principal.org_id).order_by(User.username))
        if u != viewer.user.username]
    return page(request, "delegations.html", viewer,
                delegations=config.list_delegations(db, viewer.principal), users=users,
                now=datetime.now(UTC), error=error, status=status)


@router.get("/delegations")
def delegations(request: Request, viewer: Signed, db: DB) -> Response:
    return _delegations_page(request, viewer, db)


@router.post("/delegations")
async def delegate(request: Request, viewer: Signed, db: DB) -> Response:
    from runestone_server.approvals import config

    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    try:
        ends = datetime.fromisoformat(form.get("ends", ""))
        config.delegate(db, viewer.principal, form.get("to", "")[:200], None,
                        ends if ends.tzinfo else ends.replace(tzinfo=UTC))
    except ValueError:
        return _delegations_page(request, viewer, db, status=400,
                                 error="ends: a date and time like 2026-12-01T18:00")
    except HTTPException as exc:
        db.rollback()
        return _delegations_page(request, viewer, db, error=str(exc.detail),
                                 status=exc.status_code)
    return see_other("/delegations")


@router.post("/delegations/{delegation_id}/revoke")
async def revoke_delegation(delegation_id: Id, request: Request, viewer: Signed,
                            db: DB) -> Response:
    from runestone_server.approvals import config

    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    config.revoke_delegation(db, viewer.principal, delegation_id)
    return see_other("/delegations")
