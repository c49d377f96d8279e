"""The team's grants page: the pre-approvals issued on the server, with their uses, and for
approvers a form to issue one (an exact shell command, or a rule written as TOML fields)
and a form to revoke one. Both go through govern/grants.py, as the API does."""

from __future__ import annotations

import tomllib
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError
from sqlalchemy import select

from runestone_server.auth import DB, READ_ROLES, Id, team_for
from runestone_server.govern import grants
from runestone_server.govern.grants_api import GRANT_ROLES, GrantIn
from runestone_server.govern.models import Grant
from runestone_server.web import csrf, forms
from runestone_server.web.render import PageRoute, Signed, Viewer, page, see_other
from runestone_server.web.teams import role_in

router = APIRouter(route_class=PageRoute)


def _grants_page(request: Request, viewer: Viewer, db: DB, team_id: int, *,
                 error: str = "", status: int = 200, form: dict[str, str] | None = None
                 ) -> Response:
    team = team_for(db, viewer.principal, team_id, READ_ROLES)
    rows = [grants.out(g) for g in db.scalars(select(Grant).where(
        Grant.team_id == team.id).order_by(Grant.id.desc()).limit(200))]
    return page(request, "grants.html", viewer, team=team, grants=rows, error=error[:500],
                can_grant=role_in(db, viewer.user, team.id) in GRANT_ROLES,
                form=form or {}, status=status)


@router.get("/teams/{team_id}/grants")
def grants_page(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    return _grants_page(request, viewer, db, team_id)


def _words(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]


def _body(form: forms.Form) -> GrantIn:
    """The form as the API's request; a ValueError says what is wrong."""
    labels: dict[str, str] = {}
    for item in _words(form.get("labels", "")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"label {item!r} is not key=value")
        labels[key.strip()] = value.strip()
    numbers = {}
    for name, low, high, default in (("uses", 1, 100_000, None),
                                     ("expires_minutes", 1, 527_040, None),
                                     ("offline_uses", 0, 100_000, 0)):
        raw = form.get(name, "").strip()
        value = forms.whole_number(raw, low, high) if raw else default
        if value is None:
            raise ValueError(f"{name.replace('_', ' ')} is a whole number from {low} to {high}")
        numbers[name] = value
    body: dict[str, Any] = {"labels": labels, "sessions": _words(form.get("sessions", "")),
                            "agents": _words(form.get("agents", "")),
                            "reason": form.get("reason", ""), **numbers}
    if form.get("kind") == "rule":
        try:
            body["rule"] = tomllib.loads(form.get("rule", ""))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"the rule is not TOML: {exc}") from exc
    else:
        command = form.get("command", "")
        if not command.strip():
            raise ValueError("give the exact command, or choose a rule")
        body["action"] = {"tool": form.get("tool", "") or "Bash",
                          "input": {"command": command}, "cwd": form.get("cwd", "")}
    return GrantIn.model_validate(body)


@router.post("/teams/{team_id}/grants")
async def issue_grant(team_id: Id, request: Request, viewer: Signed, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    team = team_for(db, viewer.principal, team_id, GRANT_ROLES)
    try:
        body = _body(form)
        grants.issue(db, viewer.principal, team, action=body.action.model_dump()
                     if body.action else None, rule=body.rule, labels=body.labels,
                     sessions=body.sessions, agents=body.agents, uses=body.uses,
                     minutes=body.expires_minutes, offline_uses=body.offline_uses,
                     reason=body.reason)
    except (ValueError, ValidationError, HTTPException) as exc:
        db.rollback()
        why = str(exc.detail) if isinstance(exc, HTTPException) else (
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                      for e in exc.errors()) if isinstance(exc, ValidationError) else str(exc))
        return _grants_page(request, viewer, db, team_id, error=why, status=400,
                            form={k: form.get(k, "") for k in (
                                "kind", "command", "cwd", "rule", "labels", "sessions",
                                "agents", "uses", "expires_minutes", "offline_uses",
                                "reason")})
    return see_other(f"/teams/{team_id}/grants")


@router.post("/teams/{team_id}/grants/{grant_id}/revoke")
async def revoke_grant(team_id: Id, grant_id: str, request: Request, viewer: Signed,
                       db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    team = team_for(db, viewer.principal, team_id, GRANT_ROLES)
    grant = grants.find(db, team, grant_id[:40])
    reason = form.get("reason", "").strip()
    if not reason or len(reason) > 2000 or "\x00" in reason:
        return _grants_page(request, viewer, db, team_id, status=400,
                            error="say why the grant is revoked (up to 2000 characters)")
    grants.revoke(db, viewer.principal, grant, reason)
    return see_other(f"/teams/{team_id}/grants")
