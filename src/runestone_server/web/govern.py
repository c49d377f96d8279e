"""The team's usage and friction pages: the same figures as the governance API
(govern/usage.py, govern/friction.py), for the same roles, with charts drawn on the server."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from runestone_server.auth import DB, Id, team_for
from runestone_server.govern.api import GOVERN_READ
from runestone_server.govern.friction import friction
from runestone_server.govern.usage import MAX_DAYS, usage
from runestone_server.web import forms
from runestone_server.web.charts import stacked
from runestone_server.web.render import PageRoute, Signed, page

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
