"""Browser sessions: an ApiToken row of kind "session", its secret carried in a cookie.

The session is a row, not signed state in the cookie, so logging out (or revoking from
another replica) ends it everywhere at once, and a replica needs nothing from another's
memory. The cookie is HttpOnly (scripts never see it), SameSite=Lax and Secure when the
request came over TLS.

Why Lax and not Strict: approval links arrive by e-mail and chat; with Strict the first
navigation from there carries no cookie and a signed-in approver would be asked to sign in
again. Lax sends the cookie only on top-level GET navigations, and no GET here changes
anything; every POST also carries a CSRF token (csrf.py).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from fastapi import Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone_server.auth import Principal
from runestone_server.models import ApiToken, User
from runestone_server.security import new_token, token_hash

COOKIE = "runestone_session"
SESSION_HOURS = 12


def over_tls(request: Request) -> bool:
    """True when the browser talks TLS to us: the URL's scheme, or X-Forwarded-Proto from a
    reverse proxy, which is believed only when RUNESTONE_SERVER_TRUST_PROXY=1."""
    if request.url.scheme == "https":
        return True
    if os.environ.get("RUNESTONE_SERVER_TRUST_PROXY") == "1":
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return proto == "https"
    return False


def start(db: Session, user: User) -> str:
    """A new session for `user`; the secret to put in the cookie (stored only hashed)."""
    token, digest = new_token("rsw")
    db.add(ApiToken(org_id=user.org_id, user_id=user.id, name="web session",
                    token_hash=digest, scopes=["read", "write"], kind="session",
                    expires=datetime.now(UTC) + timedelta(hours=SESSION_HOURS)))
    db.commit()
    return token


def current(request: Request, db: Session) -> tuple[Principal, str] | None:
    """The signed-in principal and its session secret, or None when there is no live
    session (no cookie, unknown, revoked, expired, or an API token used as a cookie)."""
    secret = request.cookies.get(COOKIE)
    if not secret or len(secret) > 200:
        return None
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(secret),
                                           ApiToken.kind == "session"))
    if row is None or row.revoked is not None:
        return None
    expires = row.expires
    if expires is None:
        return None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if expires <= datetime.now(UTC):
        return None
    user = db.get(User, row.user_id)
    if user is None or not user.active or user.org_id != row.org_id:
        return None
    return Principal(user, tuple(row.scopes)), secret


def end(db: Session, secret: str) -> None:
    """Revoke the session row: the cookie is worthless from now on, on every replica."""
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(secret),
                                           ApiToken.kind == "session"))
    if row is not None and row.revoked is None:
        row.revoked = datetime.now(UTC)
        db.commit()


def set_cookie(request: Request, response: Response, secret: str) -> None:
    response.set_cookie(COOKIE, secret, max_age=SESSION_HOURS * 3600, path="/",
                        httponly=True, samesite="lax", secure=over_tls(request))


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax",
                           secure=over_tls(request))
