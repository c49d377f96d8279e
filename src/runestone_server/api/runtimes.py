"""Enrollment: one-time tokens, runtimes registering their key, the server's key back;
the team's runtimes listed, and revoked for good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlalchemy import select, update

from runestone_server import revocation
from runestone_server.auth import DB, MANAGE_ROLES, READ_ROLES, Id, Who, team_for
from runestone_server.events import record
from runestone_server.models import EnrollmentToken, Runtime, User, aware
from runestone_server.security import new_token, token_hash

router = APIRouter(prefix="/api/v1")
RUNTIME_ID = r"^rt_[0-9a-f]{8,64}$"


class NewEnrollment(BaseModel):
    labels: dict[str, str] = Field(default_factory=dict)
    hours: int = Field(default=24, ge=1, le=720)


class EnrollmentOut(BaseModel):
    token: str
    expires: datetime


@router.post("/teams/{team_id}/enrollment-tokens", response_model=EnrollmentOut,
             status_code=201)
def create_enrollment(team_id: Id, body: NewEnrollment, who: Who, db: DB) -> EnrollmentOut:
    team = team_for(db, who, team_id, MANAGE_ROLES)
    pinned = body.labels.get("user")
    if pinned is not None and db.scalar(select(User.id).where(
            User.org_id == who.org_id, User.username == pinned, User.active)) is None:
        raise HTTPException(422, "the label `user` names the person whose agent the runtime "
                                 "runs (their asks are never theirs to approve): it must be "
                                 "an active user of this organisation")
    token, digest = new_token("rse")
    expires = datetime.now(UTC) + timedelta(hours=body.hours)
    db.add(EnrollmentToken(org_id=who.org_id, team_id=team.id, token_hash=digest,
                           labels=body.labels, created_by=who.user.id, expires=expires))
    record(db, who.org_id, team.id, who.name, "enrollment.created", {"labels": body.labels})
    db.commit()
    return EnrollmentOut(token=token, expires=expires)


class Enroll(BaseModel):
    token: str = Field(max_length=200)
    runtime_id: str = Field(pattern=RUNTIME_ID)
    public_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    labels: dict[str, str] = Field(default_factory=dict)


class Enrolled(BaseModel):
    credential: str
    server_public_key: str
    team_id: Id


@router.post("/enroll", response_model=Enrolled, status_code=201)
def enroll(body: Enroll, request: Request, db: DB) -> Enrolled:
    """No other credential: the one-time token is it. Spent atomically."""
    now = datetime.now(UTC)
    digest = token_hash(body.token)
    spent = db.execute(update(EnrollmentToken).where(
        EnrollmentToken.token_hash == digest, EnrollmentToken.used.is_(None),
        EnrollmentToken.expires > now).values(used=now))
    if spent.rowcount != 1:
        db.rollback()
        raise HTTPException(401, "unknown, used or expired enrollment token")
    enrollment = db.scalar(select(EnrollmentToken).where(EnrollmentToken.token_hash == digest))
    assert enrollment is not None
    existing = db.scalar(select(Runtime).where(Runtime.runtime_id == body.runtime_id))
    if existing is not None:
        db.rollback()  # the token is not spent
        if existing.revoked is not None:
            # Permanent: a revoked identity's key may be the compromised thing. Its entries
            # stay under this id; the machine comes back under a new one.
            raise HTTPException(409, "this runtime id was revoked and is never enrolled "
                                     "again: give this machine a new runtime identity "
                                     "(`runestone init --new-identity`) and enroll that")
        raise HTTPException(409, "this runtime is already enrolled")
    credential, credential_digest = new_token("rsr")
    # Whose agent this is comes only from the token a manager made (`user`): a runtime's
    # own word for it would let its owner name someone else and approve their own asks.
    # What the machine calls its user is kept as `login`, never as an identity.
    declared = dict(body.labels)
    login = declared.pop("user", None)
    labels = {**declared, **enrollment.labels}
    if login:
        labels.setdefault("login", login)
    db.add(Runtime(org_id=enrollment.org_id, team_id=enrollment.team_id,
                   runtime_id=body.runtime_id, public_key=body.public_key, labels=labels,
                   credential_hash=credential_digest))
    record(db, enrollment.org_id, enrollment.team_id, f"runtime:{body.runtime_id}",
           "runtime.enrolled", {"labels": labels})
    db.commit()
    return Enrolled(credential=credential, team_id=enrollment.team_id,
                    server_public_key=request.app.state.key.public_hex)


class RuntimeOut(BaseModel):
    runtime_id: str
    labels: dict[str, str]
    enrolled: datetime
    last_seen: datetime | None
    policy_hash: str | None
    revoked: datetime | None = None
    revoked_by: str | None = None  # the username of the manager who revoked it
    revoked_reason: str | None = None

    @classmethod
    def of(cls, runtime: Runtime) -> RuntimeOut:
        return cls(runtime_id=runtime.runtime_id, labels=runtime.labels,
                   enrolled=runtime.enrolled, last_seen=runtime.last_seen,
                   policy_hash=runtime.policy_hash, revoked=aware(runtime.revoked),
                   revoked_by=runtime.revoked_by, revoked_reason=runtime.revoked_reason)


@router.get("/teams/{team_id}/runtimes", response_model=list[RuntimeOut])
def list_runtimes(team_id: Id, who: Who, db: DB) -> list[RuntimeOut]:
    """Every runtime of the team, revoked ones too (with who revoked them, when and why)."""
    team = team_for(db, who, team_id, READ_ROLES)
    rows = db.scalars(select(Runtime).where(Runtime.team_id == team.id).order_by(Runtime.id))
    return [RuntimeOut.of(r) for r in rows]


RuntimeId = Annotated[str, PathParam(pattern=RUNTIME_ID)]


class RevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")


@router.post("/teams/{team_id}/runtimes/{runtime_id}/revoke", response_model=RuntimeOut)
def revoke_runtime(team_id: Id, runtime_id: RuntimeId, body: RevokeIn, who: Who,
                   db: DB) -> RuntimeOut:
    """Revoke a runtime for good (managers of its team, org admins): every call with its
    credential is refused from now on and its open approval requests are cancelled.
    Revoking it again changes nothing and answers the first revocation."""
    team = team_for(db, who, team_id, MANAGE_ROLES)
    runtime = db.scalar(select(Runtime).where(
        Runtime.org_id == who.org_id, Runtime.team_id == team.id,
        Runtime.runtime_id == runtime_id))
    if runtime is None:
        raise HTTPException(404, "no such runtime in this team")
    return RuntimeOut.of(revocation.revoke(db, who, runtime, body.reason.strip()))
