"""The browser's side of single sign-on: `/sso/start` sends it to the provider, with the
state in a cookie that binds the sign-in to this browser; `/sso/callback` finishes it and
starts the same session a password sign-in does (sessions, CSRF and logout as before)."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from runestone_server.auth import DB
from runestone_server.events import record
from runestone_server.sso.flow import SsoError, finish, start
from runestone_server.sso.mapping import user_for
from runestone_server.web import sessions
from runestone_server.web.login import _form
from runestone_server.web.render import PageRoute, safe_next, see_other

router = APIRouter(route_class=PageRoute)
STATE_COOKIE = "runestone_sso_state"


@router.get("/sso/start")
def sso_start(request: Request, db: DB, org: str = "", organisation: str = "",
              next: str = "/") -> Response:
    """`org` from the sign-in page's form (its own field name, so the password form's
    `organisation` field stays the only one), or `organisation` in a bookmarked link."""
    organisation = org or organisation
    target = safe_next(next)
    try:
        url, state = start(db, organisation[:200], target)
    except SsoError as exc:
        return _form(request, target, str(exc), 400, organisation[:200])
    # A page that moves on by itself rather than a redirect: the login page's CSP allows
    # forms to post only to this server (form-action 'self'), which browsers also apply to
    # a redirect answering the form; a navigation the next page starts is not a form's.
    link = html.escape(url, quote=True)
    response = HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={link}">'
        "<title>Single sign-on</title></head><body><p>Continuing to your organisation's "
        f'sign-in: <a id="continue" href="{link}">continue</a>.</p></body></html>')
    # Lax: the provider's redirect back is a top-level GET navigation, which carries it.
    response.set_cookie(STATE_COOKIE, state, max_age=600, path="/sso", httponly=True,
                        samesite="lax", secure=sessions.over_tls(request))
    return response


@router.get("/sso/callback")
def sso_callback(request: Request, db: DB, state: str = "", code: str = "",
                 error: str = "", error_description: str = "") -> Response:
    try:
        if error:
            raise SsoError(f"the provider refused the sign-in: {error} "
                           f"{error_description}".strip())
        provider, claims, target = finish(db, state[:200], code[:2000],
                                          request.cookies.get(STATE_COOKIE, "")[:200])
        user = user_for(db, provider, claims)
    except SsoError as exc:
        refused = _form(request, "/", f"Single sign-on failed: {exc}", 401)
        refused.delete_cookie(STATE_COOKIE, path="/sso")
        return refused
    secret = sessions.start(db, user)
    record(db, user.org_id, None, f"user:{user.username}", "web.login", {"via": "sso"})
    db.commit()
    response = see_other(safe_next(target))
    sessions.set_cookie(request, response, secret)
    response.delete_cookie(STATE_COOKIE, path="/sso")
    return response
