"""Teams and people: members and roles, adding people, API tokens shown once, enrolled
runtimes with their labels, last contact and active policy.

Every change goes through the API's own functions (identity, runtimes), so the role checks,
validation and server events are the API's, not a second copy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError
from sqlalchemy import select

from runestone_server.api import identity, runtimes
from runestone_server.auth import DB, MANAGE_ROLES, READ_ROLES, Id, team_for
from runestone_server.models import ROLES, ApiToken, Membership, PolicyVersion, Team, User
from runestone_server.web import csrf, forms
from runestone_server.web.render import PageRoute, Signed, page, see_other

router = APIRouter(route_class=PageRoute)


def _problem(exc: ValidationError | HTTPException) -> str:
    if isinstance(exc, HTTPException):
        return str(exc.detail)
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def role_in(db: DB, user: User, team_id: int) -> str | None:
    if user.org_admin:
        return "owner"
    return db.scalar(select(Membership.role).where(Membership.team_id == team_id,
                                                   Membership.user_id == user.id))


@router.get("/teams")
def teams(request: Request, viewer: Signed, db: DB, error: str = "") -> Response:
    rows = identity.list_teams(viewer.principal, db)
    people = []
    if viewer.user.org_admin:
        people = list(db.scalars(select(User).where(User.org_id == viewer.principal.org_id)
                                 .order_by(User.username)))
    return page(request, "teams.html", viewer, teams=rows, people=people, error=error[:300])


@router.post("/teams")
async def create_team(request: Request, viewer: Signed, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    try:
        team = identity.create_team(identity.NewTeam(name=form.get("name", "")),
                                    viewer.principal, db)
    except (ValidationError, HTTPException) as exc:
        return _error_page(request, viewer, db, exc)
    return see_other(f"/teams/{team.id}")


@router.post("/people")
async def create_user(request: Request, viewer: Signed, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    try:
        identity.create_user(identity.NewUser(username=form.get("username", ""),
                                              password=form.get("password", ""),
                                              org_admin=form.get("org_admin") == "on"),
                             viewer.principal, db)
    except (ValidationError, HTTPException) as exc:
        return _error_page(request, viewer, db, exc)
    return see_other("/teams")


def _error_page(request: Request, viewer: Signed, db: DB,
                exc: ValidationError | HTTPException) -> Response:
    db.rollback()
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    rows = identity.list_teams(viewer.principal, db)
    people = list(db.scalars(select(User).where(User.org_id == viewer.principal.org_id)
                             .order_by(User.username))) if viewer.user.org_admin else []
    return page(request, "teams.html", viewer, teams=rows, people=people,
                error=_problem(exc), status=status)


def _versions_by_hash(db: DB, team_id: int) -> dict[str, int]:
    return {h: n for h, n in db.execute(select(PolicyVersion.hash, PolicyVersion.number)
                                        .where(PolicyVersion.team_id == team_id))}


def _team_page(request: Request, viewer: Signed, db: DB, team_id: int, *, error: str = "",
               status: int = 200) -> Response:
    team = team_for(db, viewer.principal, team_id, READ_ROLES)
    members = identity.list_members(team.id, viewer.principal, db)
    rts = runtimes.list_runtimes(team.id, viewer.principal, db)
    chains: dict[str, str] = {}
    try:
        from runestone_server.audit.models import AuditChain

        chains = {c.runtime_id: c.status for c in db.scalars(
            select(AuditChain).where(AuditChain.team_id == team.id))}
    except ImportError:  # the audit domain is not installed
        pass
    role = role_in(db, viewer.user, team.id)
    users = []
    fallback = None
    if role in MANAGE_ROLES:
        users = list(db.scalars(select(User.username).where(
            User.org_id == viewer.principal.org_id).order_by(User.username)))
        fallback = _fallback(db, viewer.principal.org_id, team.id)
    return page(request, "team.html", viewer, team=team, members=members, runtimes=rts,
                versions=_versions_by_hash(db, team.id), chains=chains, role=role,
                can_manage=role in MANAGE_ROLES, roles=ROLES, users=users, error=error,
                fallback=fallback, now=datetime.now(UTC), status=status)


def _fallback(db: DB, org_id: int, team_id: int) -> dict[str, Any] | None:
    """The approval-notifications form's data, or None without the approvals domain."""
    try:
        from runestone_server.web.team_approvals import fallback_context
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("runestone_server.approvals"):
            raise
        return None
    return fallback_context(db, org_id, team_id)


def team_page_with_error(request: Request, viewer: Signed, db: DB, team_id: int,
                         exc: HTTPException) -> Response:
    """The team page again, with why a form of it was refused (for other page modules)."""
    return _team_page(request, viewer, db, team_id, error=_problem(exc),
                      status=exc.status_code)


@router.get("/teams/{team_id}")
def team_page(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    return _team_page(request, viewer, db, team_id)


@router.post("/teams/{team_id}/members")
async def set_member(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    team_for(db, viewer.principal, team_id, MANAGE_ROLES)
    try:
        body = identity.NewMember(username=form.get("username", ""), role=form.get("role", ""))
        identity.set_member(team_id, body, viewer.principal, db)
    except (ValidationError, HTTPException) as exc:
        db.rollback()
        return _team_page(request, viewer, db, team_id, error=_problem(exc), status=400)
    return see_other(f"/teams/{team_id}")


@router.post("/teams/{team_id}/members/remove")
async def remove_member(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    team_for(db, viewer.principal, team_id, MANAGE_ROLES)
    try:
        identity.remove_member(team_id, form.get("username", ""), viewer.principal, db)
    except HTTPException as exc:
        db.rollback()
        return _team_page(request, viewer, db, team_id, error=_problem(exc),
                          status=exc.status_code)
    return see_other(f"/teams/{team_id}")


@router.get("/tokens")
def tokens(request: Request, viewer: Signed, db: DB) -> Response:
    return _tokens_page(request, viewer, db)


def _tokens_page(request: Request, viewer: Signed, db: DB, *, shown: str = "",
                 error: str = "", status: int = 200) -> Response:
    rows = db.scalars(select(ApiToken).where(
        ApiToken.org_id == viewer.principal.org_id, ApiToken.user_id == viewer.user.id,
        ApiToken.kind == "api").order_by(ApiToken.id.desc()))
    return page(request, "tokens.html", viewer, tokens=list(rows), shown=shown, error=error,
                now=datetime.now(UTC), status=status)


@router.post("/tokens")
async def create_token(request: Request, viewer: Signed, db: DB) -> Response:
    """Rendered in the POST's own answer (no-store), never again: shown once."""
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    try:
        days = form.get("days", "90").strip()
        body = identity.NewToken(name=form.get("name", ""), scopes=form.all("scopes"),
                                 days=int(days) if days else None)
        made = identity.create_token(body, viewer.principal, db)
    except (ValidationError, HTTPException, ValueError) as exc:
        db.rollback()
        message = _problem(exc) if not isinstance(exc, ValueError) else "days: a number"
        return _tokens_page(request, viewer, db, error=message, status=400)
    return _tokens_page(request, viewer, db, shown=made.token, status=201)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(token_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    identity.revoke_token(token_id, viewer.principal, db)
    return see_other("/tokens")


def visible_teams(db: DB, viewer: Signed) -> list[Team]:
    query = select(Team).where(Team.org_id == viewer.principal.org_id)
    if not viewer.user.org_admin:
        query = query.join(Membership, Membership.team_id == Team.id).where(
            Membership.user_id == viewer.user.id)
    return list(db.scalars(query.order_by(Team.id)))
