"""Sign in and out. Sign-in checks the argon2 password, starts a session row and sends the
browser back to where it was going (a local path only); sign-out revokes the row."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from runestone_server.auth import DB
from runestone_server.events import record
from runestone_server.signin import Throttled, client_address, sign_in
from runestone_server.sso.mapping import passwords_allowed
from runestone_server.web import csrf, forms, sessions
from runestone_server.web.render import PageRoute, page, safe_next, see_other

router = APIRouter(route_class=PageRoute)


def _form(request: Request, next_path: str, error: str = "", status: int = 200,
          organisation: str = "", username: str = "") -> Response:
    response = HTMLResponse("")
    token = csrf.prelogin(request, response)
    rendered = page(request, "login.html", status=status, login_csrf=token, next=next_path,
                    error=error, organisation=organisation, username=username)
    for key, value in response.headers.items():
        if key.lower() == "set-cookie":
            rendered.headers.append(key, value)
    return rendered


@router.get("/login")
def login_page(request: Request, db: DB, next: str = "/") -> Response:
    target = safe_next(next)
    if sessions.current(request, db) is not None:
        return see_other(target)
    return _form(request, target)


@router.post("/login")
async def login(request: Request, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check_prelogin(request, form.get(csrf.FIELD))
    target = safe_next(form.get("next"))
    organisation = form.get("organisation", "")[:200]
    username = form.get("username", "")[:200]
    try:
        user = sign_in(db, organisation, username, form.get("password", "")[:1000],
                       client_address(request))
    except Throttled as exc:
        refused = _form(request, target, f"Too many failed sign-ins. Try again in "
                        f"{exc.retry_after} seconds.", 429, organisation, username)
        refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    if user is None:
        return _form(request, target, "Wrong organisation, user name or password.", 401,
                     organisation, username)
    if not passwords_allowed(db, user):
        return _form(request, target, "This organisation signs in through single sign-on.",
                     403, organisation)
    secret = sessions.start(db, user)
    record(db, user.org_id, None, f"user:{user.username}", "web.login", {})
    db.commit()
    response = see_other(target)
    sessions.set_cookie(request, response, secret)
    response.delete_cookie(csrf.PRELOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, db: DB) -> Response:
    form = await forms.read(request)
    found = sessions.current(request, db)
    response = see_other("/login")
    if found is not None:
        _principal, secret = found
        csrf.check(secret, form.get(csrf.FIELD))
        sessions.end(db, secret)
    sessions.clear_cookie(request, response)
    return response
