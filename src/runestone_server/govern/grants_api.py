"""The grants API: approvers issue, list and revoke pre-approvals for their team; enrolled
runtimes pull the grants meant for them (signed) and spend uses one at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError, OperationalError

from runestone_server.auth import DB, READ_ROLES, Id, RuntimeCaller, Who, team_for
from runestone_server.govern import grants
from runestone_server.revocation import ensure_live

router = APIRouter(prefix="/api/v1", tags=["grants"])
GRANT_ROLES = ("owner", "admin", "approver")
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, Field(max_length=200, pattern=NO_NUL)]
GrantId = Annotated[str, Path(pattern=r"^grt_[0-9a-f]{24}$")]
MAX_MINUTES = 366 * 24 * 60  # a year, as a local command-line grant


class ActionIn(BaseModel):
    """The exact action, as the runtime sees it: tool, input and working directory."""

    tool: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    input: dict[str, Any]
    cwd: str = Field(default="", max_length=4096, pattern=NO_NUL)


class GrantIn(BaseModel):
    action: ActionIn | None = None
    rule: dict[str, Any] | None = Field(default=None, description="a rule table in the "
                                        "runtime's rule language (program, domain, path...)")
    labels: dict[Text, Text] = Field(default_factory=dict, max_length=20,
                                     description="runtimes whose labels all match")
    sessions: list[Text] = Field(default_factory=list, max_length=100)
    agents: list[Text] = Field(default_factory=list, max_length=100)
    uses: int = Field(ge=1, le=100_000)
    expires_minutes: int = Field(ge=1, le=MAX_MINUTES)
    offline_uses: int = Field(default=0, ge=0, le=100_000,
                              description="uses each runtime may spend while the server "
                                          "is away (reserved from `uses` when it pulls)")
    reason: str = Field(default="", max_length=2000, pattern=NO_NUL)


class GrantOut(BaseModel):
    grant_id: str
    team_id: int
    action_key: str | None
    rule: dict[str, Any] | None
    summary: str
    labels: dict[str, str]
    sessions: list[str]
    agents: list[str]
    uses: int
    used: int
    reserved: int
    offline_uses: int
    expires: datetime
    reason: str
    created: datetime
    revoked: datetime | None
    revoked_reason: str
    state: str


class RevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, pattern=NO_NUL)


class SpendIn(BaseModel):
    action_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    session: str = Field(default="", max_length=200, pattern=NO_NUL)
    agent: str = Field(default="", max_length=200, pattern=NO_NUL)


@router.post("/teams/{team_id}/grants", response_model=GrantOut, status_code=201)
def issue_grant(team_id: Id, body: GrantIn, who: Who, db: DB) -> dict[str, Any]:
    """Pre-approve an exact action or a rule, for some uses until an expiry."""
    team = team_for(db, who, team_id, GRANT_ROLES)
    grant = grants.issue(db, who, team, action=body.action.model_dump() if body.action
                         else None, rule=body.rule, labels=body.labels,
                         sessions=body.sessions, agents=body.agents, uses=body.uses,
                         minutes=body.expires_minutes, offline_uses=body.offline_uses,
                         reason=body.reason)
    return grants.out(grant)


@router.get("/teams/{team_id}/grants", response_model=list[GrantOut])
def list_grants(team_id: Id, who: Who, db: DB) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from runestone_server.govern.models import Grant

    team = team_for(db, who, team_id, READ_ROLES)
    rows = db.scalars(select(Grant).where(Grant.team_id == team.id).order_by(
        Grant.id.desc()).limit(500))
    return [grants.out(g) for g in rows]


@router.post("/teams/{team_id}/grants/{grant_id}/revoke", response_model=GrantOut)
def revoke_grant(team_id: Id, grant_id: GrantId, body: RevokeIn, who: Who,
                 db: DB) -> dict[str, Any]:
    """Stop a grant now (idempotent: the first revocation stands)."""
    team = team_for(db, who, team_id, GRANT_ROLES)
    return grants.out(grants.revoke(db, who, grants.find(db, team, grant_id), body.reason))


RETRIES = 5


@router.get("/runtime/grants")
def pull_grants(request: Request, runtime: RuntimeCaller, db: DB) -> dict[str, Any]:
    """The live grants for this runtime, each signed for it."""
    for attempt in range(RETRIES):
        try:
            ensure_live(db, runtime.id)
            return {"runtime_id": runtime.runtime_id,
                    "grants": grants.for_runtime(db, request.app.state.key, runtime)}
        except (IntegrityError, OperationalError):
            # Two pulls of this runtime allotting at once (the allotment row is unique),
            # or SQLite's write lock: the loser starts again and finds the allotment.
            db.rollback()
            if attempt == RETRIES - 1:
                raise HTTPException(503, "the grants are busy; pull again") from None
    raise AssertionError("unreachable")


@router.post("/runtime/grants/{grant_id}/spend")
def spend_grant(grant_id: GrantId, body: SpendIn, request: Request, runtime: RuntimeCaller,
                db: DB) -> dict[str, Any]:
    """Count one use for this runtime; 409 says why not (spent, expired, revoked)."""
    for attempt in range(RETRIES):
        try:
            ensure_live(db, runtime.id)
            return grants.spend(db, request.app.state.key, runtime, grant_id,
                                body.action_key, body.session, body.agent)
        except OperationalError:  # SQLite's write lock under contention: nothing was counted
            db.rollback()
            if attempt == RETRIES - 1:
                raise HTTPException(503, "the grant store is busy; not counted") from None
    raise AssertionError("unreachable")
