"""Who is calling, and may they: bearer tokens for people and for runtimes, roles per team.

Every lookup is scoped to the caller's organisation: another tenant's team, runtime or
policy is "not found", never "forbidden", so ids leak nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone_server.models import ApiToken, Membership, Runtime, Team, User, aware
from runestone_server.revocation import refusal
from runestone_server.security import token_hash

READ_ROLES = ("owner", "admin", "policy_author", "approver", "auditor", "member")
MANAGE_ROLES = ("owner", "admin")
AUTHOR_ROLES = ("owner", "admin", "policy_author")
AUDIT_ROLES = ("owner", "admin", "auditor")


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    scopes: tuple[str, ...]

    @property
    def org_id(self) -> int:
        return self.user.org_id

    @property
    def name(self) -> str:
        return f"user:{self.user.username}"


def _bearer(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "a bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def get_db(request: Request) -> Iterator[Session]:
    """A database session for one request, from the app's Database."""
    yield from request.app.state.db.session()


DB = Annotated[Session, Depends(get_db)]


def principal(request: Request, db: DB) -> Principal:
    token = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(_bearer(request))))
    now = datetime.now(UTC)
    if token is None or token.revoked is not None:
        raise HTTPException(401, "unknown or revoked token")
    if token.expires is not None and aware(token.expires) <= now:
        raise HTTPException(401, "the token has expired")
    user = db.get(User, token.user_id)
    if user is None or not user.active or user.org_id != token.org_id:
        raise HTTPException(401, "the token's user is not active")
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    if write and "write" not in token.scopes:
        raise HTTPException(403, "this token is read-only")
    if not write and "read" not in token.scopes:
        raise HTTPException(403, "this token cannot read")
    return Principal(user, tuple(token.scopes))


def runtime_principal(request: Request, db: DB) -> Runtime:
    """The runtime a credential belongs to; a revoked runtime is refused here, so every
    runtime-credential endpoint refuses it (403, saying who revoked it, when and why)."""
    runtime = db.scalar(select(Runtime).where(
        Runtime.credential_hash == token_hash(_bearer(request))))
    if runtime is None:
        raise HTTPException(401, "unknown runtime credential")
    if runtime.revoked is not None:
        raise refusal(runtime)
    return runtime


Who = Annotated[Principal, Depends(principal)]
MAX_ID = 2_147_483_647  # ids fit a 32-bit integer column on every database
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int, Query(ge=1, le=MAX_ID)]
RuntimeCaller = Annotated[Runtime, Depends(runtime_principal)]


def team_for(db: Session, who: Principal, team_id: int, roles: tuple[str, ...]) -> Team:
    """The team, if it is in the caller's organisation and the caller holds one of `roles`."""
    team = db.scalar(select(Team).where(Team.id == team_id, Team.org_id == who.org_id))
    if team is None:
        raise HTTPException(404, "no such team")
    if who.user.org_admin:
        return team
    role = db.scalar(select(Membership.role).where(Membership.team_id == team.id,
                                                    Membership.user_id == who.user.id))
    if role is None:
        raise HTTPException(404, "no such team")
    if role not in roles:
        raise HTTPException(403, f"this needs one of the roles: {', '.join(roles)}")
    return team
