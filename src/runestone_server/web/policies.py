"""Policies: versions with author and message, a side-by-side diff of any two, the
validation and [[test]] result of each, publishing to the team or to runtimes by label,
and rolling back (publishing an older version).

Creating and publishing call the API's functions, so validation with the runtime's own
loader, role checks and server events are exactly the API's.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy import select

from runestone_server.api import policies as api
from runestone_server.auth import AUTHOR_ROLES, DB, READ_ROLES, Id, QueryId, team_for
from runestone_server.models import PolicyVersion, Publication, User
from runestone_server.web import csrf, forms
from runestone_server.web.render import PageRoute, Signed, page, see_other
from runestone_server.web.teams import _problem, role_in

router = APIRouter(route_class=PageRoute)


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    text: str


def check(text: str) -> Check:
    """Load with the runtime's own loader and run the policy's [[test]] cases."""
    from runestone.policy import PolicyError
    from runestone.policy.loader import compile_policy_text

    try:
        policy = compile_policy_text(text, source="policy version")
    except PolicyError as exc:
        return Check(False, str(exc))
    return Check(True, f"loads: {len(policy.rules)} rules, default {policy.default}; "
                       f"{len(policy.cases)} test cases pass")


def parse_selector(text: str) -> dict[str, str]:
    """`env=prod, host=a` (commas or new lines) into a label selector."""
    selector: dict[str, str] = {}
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise HTTPException(400, f"a selector is label=value pairs; got {part!r}")
        selector[key.strip()[:100]] = value.strip()[:200]
    return selector


def _listing(request: Request, viewer: Signed, db: DB, team_id: int, *, error: str = "",
             status: int = 200, draft: str = "", message: str = "") -> Response:
    team = team_for(db, viewer.principal, team_id, READ_ROLES)
    versions = list(db.scalars(select(PolicyVersion).where(PolicyVersion.team_id == team.id)
                               .order_by(PolicyVersion.number.desc())))
    authors = {u.id: u.username for u in db.scalars(select(User).where(
        User.org_id == viewer.principal.org_id))}
    by_id = {v.id: v.number for v in versions}
    pubs = list(db.scalars(select(Publication).where(Publication.team_id == team.id)
                           .order_by(Publication.id.desc()).limit(50)))
    role = role_in(db, viewer.user, team.id)
    return page(request, "policies.html", viewer, team=team, versions=versions,
                authors=authors, publications=pubs, numbers=by_id,
                can_author=role in AUTHOR_ROLES, error=error, status=status, draft=draft,
                message=message)


@router.get("/teams/{team_id}/policies")
def versions(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    return _listing(request, viewer, db, team_id)


@router.post("/teams/{team_id}/policies")
async def create_version(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    text, message = form.get("text", ""), form.get("message", "")
    try:
        made = api.create_version(team_id, api.NewVersion(text=text, message=message),
                                  viewer.principal, db)
    except (ValidationError, HTTPException) as exc:
        db.rollback()
        if isinstance(exc, HTTPException) and exc.status_code in (403, 404):
            raise
        return _listing(request, viewer, db, team_id, error=_problem(exc), status=400,
                        draft=text, message=message)
    return see_other(f"/teams/{team_id}/policies/{made.number}")


@router.get("/teams/{team_id}/policies/diff")
def diff(team_id: Id, old: QueryId, new: QueryId, request: Request, viewer: Signed,
         db: DB) -> Response:
    team = team_for(db, viewer.principal, team_id, READ_ROLES)
    a, b = api._version(db, team.id, old), api._version(db, team.id, new)
    left, right = a.text.splitlines(), b.text.splitlines()
    rows: list[tuple[str, int | None, str, int | None, str]] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for k in range(max(i2 - i1, j2 - j1)):
            li, rj = i1 + k, j1 + k
            lnum = li + 1 if li < i2 else None
            rnum = rj + 1 if rj < j2 else None
            rows.append((tag, lnum, left[li] if lnum else "", rnum, right[rj] if rnum else ""))
    changed = sum(1 for r in rows if r[0] != "equal")
    return page(request, "diff.html", viewer, team=team, old=a, new=b, rows=rows,
                changed=changed)


@router.get("/teams/{team_id}/policies/{number}")
def version(team_id: Id, number: Id, request: Request, viewer: Signed, db: DB) -> Response:
    team = team_for(db, viewer.principal, team_id, READ_ROLES)
    v = api._version(db, team.id, number)
    author = db.scalar(select(User.username).where(User.id == v.author_id))
    others = list(db.scalars(select(PolicyVersion.number).where(
        PolicyVersion.team_id == team.id).order_by(PolicyVersion.number.desc())))
    role = role_in(db, viewer.user, team.id)
    return page(request, "version.html", viewer, team=team, version=v, author=author,
                check=check(v.text), others=others, can_author=role in AUTHOR_ROLES)


@router.get("/teams/{team_id}/policies/{number}/simulation")
def simulation(team_id: Id, number: Id, request: Request, viewer: Signed, db: DB,
               days: Annotated[int, Query(ge=1, le=366)] = 30) -> Response:
    """Replay the team's recent audit history against this version (the API's simulation,
    which uses the runtime's own engine): which past decisions would change. Computes and
    changes nothing, so a GET."""
    from runestone_server.api import simulation as sim

    team = team_for(db, viewer.principal, team_id, AUTHOR_ROLES)
    v = api._version(db, team.id, number)
    result = sim.simulate_candidate(team.id, sim.SimulationRequest(number=v.number, days=days),
                                    viewer.principal, db)
    return page(request, "simulation.html", viewer, team=team, version=v, result=result,
                days=days)


@router.post("/teams/{team_id}/publications")
async def publish(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    team_for(db, viewer.principal, team_id, AUTHOR_ROLES)
    try:
        selector = parse_selector(form.get("selector", ""))
        body = api.Publish(number=int(form.get("number", "0") or 0), selector=selector)
        api.publish(team_id, body, viewer.principal, db)
    except (ValidationError, HTTPException, ValueError) as exc:
        db.rollback()
        if isinstance(exc, HTTPException) and exc.status_code in (403, 404):
            raise
        problem = "number: a version number" if isinstance(exc, ValueError) else _problem(exc)
        return _listing(request, viewer, db, team_id, error=problem, status=400)
    return see_other(f"/teams/{team_id}/policies")
