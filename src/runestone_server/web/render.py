"""How every page is answered: Jinja2 with autoescaping, the security headers on every
response (errors included), sign-in required by default, and errors as pages.

`PageRoute` is the route class of every page router, so a page cannot forget the headers,
and an HTTPException raised by the shared role checks (`team_for`: 404 for another
tenant's object, 403 for a missing role) becomes an error page with the same status.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape

from runestone_server.auth import DB, Principal
from runestone_server.web import csrf, sessions

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

templates = Environment(loader=PackageLoader("runestone_server.web", "templates"),
                        autoescape=select_autoescape(default=True, default_for_string=True),
                        trim_blocks=True, lstrip_blocks=True)


class LoginRequired(Exception):
    """No live session: pages send the browser to sign in, then back."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person: the same Principal the API's role checks take."""

    principal: Principal
    csrf: str
    secret: str

    @property
    def user(self):  # noqa: ANN201 - the User row
        return self.principal.user


def viewer(request: Request, db: DB) -> Viewer:
    found = sessions.current(request, db)
    if found is None:
        raise LoginRequired
    principal, secret = found
    return Viewer(principal, csrf.token_for(secret), secret)


Signed = Annotated[Viewer, Depends(viewer)]


def safe_next(target: str | None) -> str:
    """A local path to go back to after sign-in, or "/". Refuses anything that could leave
    the site: a scheme, `//host`, backslashes (browsers read `/\\host` as `//host`),
    control characters."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    if target.startswith("/login") or target.startswith("/logout"):
        return "/"
    return target


def page(request: Request, template: str, viewer: Viewer | None = None, *,
         status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(request=request, viewer=viewer,
                                                   path=request.url.path, **context)
    return HTMLResponse(html, status_code=status)


def see_other(target: str) -> RedirectResponse:
    """After a successful POST: go to a page by GET (no resubmission on reload)."""
    return RedirectResponse(target, status_code=303)


def secure(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _login_redirect(request: Request) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        here = request.url.path  # a POST cannot be replayed; come back to its page
    return see_other("/login?next=" + quote(safe_next(here), safe="/"))


class PageRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await inner(request)
            except LoginRequired:
                response = _login_redirect(request)
            except HTTPException as exc:
                response = page(request, "error.html", status=exc.status_code,
                                message=str(exc.detail))
            except RequestValidationError:
                response = page(request, "error.html", status=404,
                                message="no such page (a malformed address)")
            return secure(response)

        return handler
