"""The team's usage, friction and proposals pages: the same figures as the governance API
(govern/usage.py, friction.py, proposals.py), for the same roles, with charts drawn on the
server; drafting a proposal and setting the thresholds go through the API's functions."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError

from runestone_server.auth import AUTHOR_ROLES, DB, Id, team_for
from runestone_server.govern import api as govern_api
from runestone_server.govern import proposals
from runestone_server.govern.api import GOVERN_READ
from runestone_server.govern.friction import friction
from runestone_server.govern.usage import MAX_DAYS, usage
from runestone_server.web import csrf, forms
from runestone_server.web.charts import stacked
from runestone_server.web.render import PageRoute, Signed, Viewer, page, see_other
from runestone_server.web.teams import role_in

router = APIRouter(route_class=PageRoute)
OUTCOMES = ("allow", "ask", "deny")


def _days(value: str, default: int) -> int:
    return forms.whole_number(value, 1, MAX_DAYS) or default if value else default


@router.get("/teams/{team_id}/usage")
def usage_page(team_id: Id, request: Request, viewer: Signed, db: DB,
               days: str = "") -> Response:
    team = team_for(db, viewer.principal, team_id, GOVERN_READ)
    figures = usage(db, viewer.principal.org_id, team.id, datetime.now(UTC).date(),
                    _days(days, 14))
    columns = [(d["day"], {"allow": max(0, d["decisions"] - d["asks"] - d["denies"]),
                           "ask": d["asks"], "deny": d["denies"]}) for d in figures["per_day"]]
    return page(request, "usage.html", viewer, team=team, figures=figures,
                bars=stacked(columns, OUTCOMES))


@router.get("/teams/{team_id}/friction")
def friction_page(team_id: Id, request: Request, viewer: Signed, db: DB,
                  days: str = "") -> Response:
    team = team_for(db, viewer.principal, team_id, GOVERN_READ)
    figures = friction(db, viewer.principal.org_id, team.id, datetime.now(UTC).date(),
                       _days(days, 30))
    columns = [(d["day"], {"ask": d["asks"], "allow": d["decisions"] - d["asks"]})
               for d in figures["ask_rate_per_day"]]
    return page(request, "friction.html", viewer, team=team, figures=figures,
                bars=stacked(columns, ("allow", "ask")))


def _proposals_page(request: Request, viewer: Viewer, db: DB, team_id: int, days: int,
                    *, error: str = "", status: int = 200) -> Response:
    team = team_for(db, viewer.principal, team_id, GOVERN_READ)
    try:
        found = proposals.propose(db, team, days)
    except HTTPException as exc:
        if exc.status_code != 409:
            raise
        found, error = None, error or str(exc.detail)
    role = role_in(db, viewer.user, team.id)
    return page(request, "proposals.html", viewer, team=team, found=found, days=days,
                thresholds=proposals.thresholds(db, team), error=error[:500],
                can_author=role in AUTHOR_ROLES, status=status)


@router.get("/teams/{team_id}/proposals")
def proposals_page(team_id: Id, request: Request, viewer: Signed, db: DB,
                   days: str = "") -> Response:
    return _proposals_page(request, viewer, db, team_id, _days(days, 30))


@router.post("/teams/{team_id}/proposals/draft")
async def draft(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    """The API's one step: the proposal (named by its rule hash) as a new draft version;
    then the version's page, where it is published or not."""
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    days = _days(form.get("days", ""), 30)
    try:
        made = govern_api.make_draft(team_id, govern_api.DraftIn(
            rule_hash=form.get("rule_hash", ""), days=days), viewer.principal, db)
    except ValidationError:
        return _proposals_page(request, viewer, db, team_id, days, status=400,
                               error="no proposal was named")
    except HTTPException as exc:
        db.rollback()
        if exc.status_code == 403 or (exc.status_code == 404 and \
                "no such team" in str(exc.detail)):
            raise
        return _proposals_page(request, viewer, db, team_id, days, error=str(exc.detail),
                               status=exc.status_code)
    return see_other(f"/teams/{team_id}/policies/{made['number']}")


@router.post("/teams/{team_id}/proposal-settings")
async def save_thresholds(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    try:
        body = govern_api.Thresholds(
            min_approvals=forms.whole_number(form.get("min_approvals", ""), 1, 10_000) or 0,
            min_people=forms.whole_number(form.get("min_people", ""), 1, 1_000) or 0)
    except ValidationError:
        team_for(db, viewer.principal, team_id, AUTHOR_ROLES)
        return _proposals_page(request, viewer, db, team_id, 30, status=400,
                               error="thresholds are whole numbers: approvals 1 to 10000, "
                                     "people 1 to 1000")
    govern_api.put_thresholds(team_id, body, viewer.principal, db)
    return see_other(f"/teams/{team_id}/proposals")
