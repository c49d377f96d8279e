"""CSRF protection: every form carries a token the attacker's page cannot know, and every
POST is refused (403) without the right one.

Signed in, the token is an HMAC keyed with the session's secret: it is bound to that
session, needs no storage, and a page on another site can read neither the HttpOnly cookie
nor our pages. Before sign-in (the login form itself, against login CSRF) it is an HMAC
keyed with a random value in a short-lived pre-login cookie (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import HTTPException, Request, Response

from runestone_server.web.sessions import over_tls

FIELD = "csrf"
PRELOGIN_COOKIE = "runestone_prelogin"


def token_for(secret: str, purpose: str = "session") -> str:
    return hmac.new(secret.encode(), f"runestone-csrf:{purpose}".encode(),
                    hashlib.sha256).hexdigest()


def check(secret: str | None, submitted: str | None, purpose: str = "session") -> None:
    """403 unless `submitted` is the token for `secret`."""
    if not secret or not submitted or not hmac.compare_digest(
            token_for(secret, purpose).encode(), submitted.encode()):
        raise HTTPException(403, "the form's CSRF token is missing or wrong; reload the page "
                                 "and try again")


def prelogin(request: Request, response: Response) -> str:
    """The login form's token, (re)using the pre-login cookie."""
    value = request.cookies.get(PRELOGIN_COOKIE)
    if not value or len(value) != 43:
        value = secrets.token_urlsafe(32)
        response.set_cookie(PRELOGIN_COOKIE, value, max_age=3600, path="/", httponly=True,
                            samesite="lax", secure=over_tls(request))
    return token_for(value, "login")


def check_prelogin(request: Request, submitted: str | None) -> None:
    check(request.cookies.get(PRELOGIN_COOKIE), submitted, "login")
