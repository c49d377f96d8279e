"""HTTP for approvals: runtimes send asks and long-poll for decisions; approvers list,
read and vote; team managers configure groups and routes; anyone delegates. A thin layer
over `service` and `config`, which the dashboard's pages call too."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

# Importing the worker task registers it with the worker.
from runestone_server.approvals import (  # noqa: F401
    config,
    escalation,
    fallback,
    revoked,
    service,
    unsettled,
    wakeups,
)
from runestone_server.approvals.models import MAX_SCOPE_MINUTES, SEVERITIES
from runestone_server.approvals.service import NewAsk, Refused, RuntimeRef
from runestone_server.auth import DB, READ_ROLES, Id, RuntimeCaller, Who, runtime_principal
from runestone_server.auth import team_for as _team_for
from runestone_server.models import Runtime
from runestone_server.revocation import ensure_live, refusal

router = APIRouter(prefix="/api/v1")
MAX_WAIT = 60.0
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refuse it as a 422, not a 500
Severity = Literal["low", "medium", "high", "critical"]


# --- runtimes ---------------------------------------------------------------------------

class AskIn(BaseModel):
    request_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")
    action_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    tool: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    summary: str = Field(default="", max_length=4000, pattern=NO_NUL)
    reason: str = Field(default="", max_length=4000, pattern=NO_NUL)
    rules: list[Annotated[str, Field(max_length=200, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=50)
    severity: str = Field(default="medium", max_length=20, pattern=NO_NUL)
    input: dict[str, Any] = Field(default_factory=dict)
    user: str = Field(default="", max_length=200, pattern=NO_NUL)
    agent: str = Field(default="", max_length=200, pattern=NO_NUL)
    session: str = Field(default="", max_length=200, pattern=NO_NUL)
    mode: Literal["wait", "defer", "ask"] = "wait"


class RuntimeDecision(BaseModel):
    id: int
    request_id: str
    state: str
    action_hash: str
    runtime_id: str
    level: int
    link: str
    reason: str
    approvers: list[str]
    signature: str
    scope: str  # what an approval covers, signed with it: "once" or "rule-session"
    minutes: int  # how long a rule-session approval lasts; 0 for "once"


@router.post("/runtime/approvals", response_model=RuntimeDecision, status_code=201)
def runtime_ask(body: AskIn, runtime: RuntimeCaller, request: Request,
                db: DB) -> dict[str, Any]:
    """An ask from a runtime: recorded, routed, its approvers notified."""
    ref = RuntimeRef.of(runtime)
    ensure_live(db, runtime.id)  # in the ask's transaction: a revocation cancels what it sees
    service.submit(db, ref, NewAsk(
        request_id=body.request_id, action_hash=body.action_hash, tool=body.tool,
        summary=body.summary, reason=body.reason, rules=tuple(body.rules),
        severity=body.severity if body.severity in SEVERITIES else "critical",
        input=body.input, user=body.user, agent=body.agent, session=body.session,
        mode=body.mode))
    view = service.runtime_view(db, ref, body.request_id, request.app.state.key.sign)
    assert view is not None
    return view


@router.post("/runtime/approvals/{request_id}/cancel", response_model=RuntimeDecision)
def runtime_cancel(request_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")],
                   runtime: RuntimeCaller, request: Request, db: DB) -> dict[str, Any]:
    """The runtime stopped waiting (its wait timed out): the pending ask is withdrawn."""
    ref = RuntimeRef.of(runtime)
    service.cancel_by_runtime(db, ref, request_id)
    view = service.runtime_view(db, ref, request_id, request.app.state.key.sign)
    if view is None:
        raise Refused(404, "no such approval request from this runtime")
    return view


def _runtime_ref(request: Request) -> RuntimeRef:
    """Authenticate in a short session of its own: a long-poll holds no connection."""
    with request.app.state.db.sessions() as db:
        return RuntimeRef.of(runtime_principal(request, db))


@router.get("/runtime/approvals/{request_id}", response_model=RuntimeDecision)
async def runtime_long_poll(
        request_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")],
        request: Request,
        runtime: Annotated[RuntimeRef, Depends(_runtime_ref)],
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0.0) -> dict[str, Any]:
    """The request's state; with `wait`, answer as soon as it is decided, or after `wait`
    seconds. Each re-check is a short session; in between, no connection is held."""
    database = request.app.state.db
    sign = request.app.state.key.sign
    deadline = time.monotonic() + wait

    def look() -> dict[str, Any] | None:
        with database.sessions() as db:
            current = db.get(Runtime, runtime.pk)
            if current is None or current.revoked is not None:
                raise refusal(current)  # revoked while it waited
            return service.runtime_view(db, runtime, request_id, sign)

    while True:
        view = await run_in_threadpool(look)
        if view is None:
            raise Refused(404, "no such approval request from this runtime")
        remaining = deadline - time.monotonic()
        if view["state"] != "pending" or remaining <= 0:
            return view
        await wakeups.wait(database.url, view["id"], remaining)


# --- approvers --------------------------------------------------------------------------

class ApprovalSummary(BaseModel):
    id: int
    request_id: str
    team_id: int
    tool: str
    summary: str
    rule: str
    severity: str
    requester: dict[str, str]
    state: str
    level: int
    level_deadline: datetime | None
    created: datetime
    link: str


class Vote(BaseModel):
    user: str
    vote: str
    reason: str
    level: int
    on_behalf_of: str | None
    scope: str
    minutes: int
    created: datetime


class Step(BaseModel):
    kind: str
    actor: str
    created: datetime
    detail: dict[str, Any]


class ApprovalDetail(ApprovalSummary):
    reason: str
    purpose: str = Field(default="", description="the agent's stated purpose (Claude Code's "
                         "description): its own words, checked by nobody")
    rules: list[str]
    action_hash: str
    input: dict[str, Any]
    runtime_id: str
    route: str | None
    levels: list[dict[str, Any]]
    decided: datetime | None
    decided_reason: str
    scope: str
    scope_minutes: int
    votes: list[Vote]
    timeline: list[Step]
    can_vote: bool


class VoteIn(BaseModel):
    vote: Literal["approve", "deny"]
    reason: str = Field(default="", max_length=2000, pattern=NO_NUL)
    # An approve covers this exact action once, or also the request's rules for the
    # requesting session for `minutes` (refused for a request with no rules).
    scope: Literal["once", "rule-session"] = "once"
    minutes: int = Field(default=30, ge=1, le=MAX_SCOPE_MINUTES)


@router.get("/approvals", response_model=list[ApprovalSummary])
def my_inbox(who: Who, db: DB) -> list[dict[str, Any]]:
    """Pending requests that I (or someone who delegated to me) may decide now."""
    return [service.summary(a) for a in service.inbox(db, who)]


@router.get("/approvals/{approval_id}", response_model=ApprovalDetail)
def get_approval(approval_id: Id, who: Who, db: DB) -> dict[str, Any]:
    return service.describe(db, who, service.load(db, who, approval_id))


@router.post("/approvals/{approval_id}/votes", response_model=ApprovalDetail)
def cast_vote(approval_id: Id, body: VoteIn, who: Who, db: DB) -> dict[str, Any]:
    approval = service.vote(db, who, approval_id, body.vote, body.reason, body.scope,
                            body.minutes)
    return service.describe(db, who, approval)


@router.get("/teams/{team_id}/approvals", response_model=list[ApprovalSummary])
def team_approvals(team_id: Id, who: Who, db: DB,
                   state: Annotated[str | None, Query(max_length=20)] = None
                   ) -> list[dict[str, Any]]:
    team = _team_for(db, who, team_id, READ_ROLES)
    return [service.summary(a) for a in service.team_requests(db, who.org_id, team.id, state)]


# --- configuration ----------------------------------------------------------------------

class GroupIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    members: list[Annotated[str, Field(max_length=200, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=500)
    channel_ids: list[Annotated[int, Field(ge=1, le=2_147_483_647)]] = Field(
        default_factory=list, max_length=50)


class GroupOut(BaseModel):
    id: int
    team_id: int
    name: str
    members: list[str]
    channel_ids: list[int]


@router.get("/teams/{team_id}/approver-groups", response_model=list[GroupOut])
def list_groups(team_id: Id, who: Who, db: DB) -> list[dict[str, Any]]:
    return config.list_groups(db, who, team_id)


@router.post("/teams/{team_id}/approver-groups", response_model=GroupOut, status_code=201,
             responses={200: {"model": GroupOut, "description": "the group of this name, "
                                                               "replaced"}})
def save_group(team_id: Id, body: GroupIn, who: Who, db: DB,
               response: Response) -> dict[str, Any]:
    """Create the group, or replace the team's group of the same name (201 / 200)."""
    saved = config.save_group(db, who, team_id, body.name, body.members, body.channel_ids)
    if not saved["created"]:
        response.status_code = 200
    return saved


@router.put("/teams/{team_id}/approver-groups/{group_id}", response_model=GroupOut)
def update_group(team_id: Id, group_id: Id, body: GroupIn, who: Who,
                 db: DB) -> dict[str, Any]:
    return config.save_group(db, who, team_id, body.name, body.members, body.channel_ids,
                             group_id=group_id)


@router.delete("/teams/{team_id}/approver-groups/{group_id}", status_code=204)
def delete_group(team_id: Id, group_id: Id, who: Who, db: DB) -> Response:
    """Delete a group no route names (409 names the routes that still use it)."""
    config.delete_group(db, who, team_id, group_id)
    return Response(status_code=204)


class LevelIn(BaseModel):
    group_id: int = Field(ge=1, le=2_147_483_647)
    timeout_seconds: int = Field(ge=1, le=30 * 24 * 3600)
    quorum: int = Field(default=1, ge=1, le=50)


class RouteIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    priority: int = Field(default=100, ge=0, le=1_000_000)
    labels: dict[Annotated[str, Field(max_length=100, pattern=NO_NUL)],
                 Annotated[str, Field(max_length=200, pattern=NO_NUL)]] = Field(
        default_factory=dict)
    tool: str = Field(default="*", max_length=200, pattern=NO_NUL)
    rule: str = Field(default="*", max_length=200, pattern=NO_NUL)
    min_severity: Severity = "low"
    levels: list[LevelIn] = Field(min_length=1, max_length=20)


class RouteOut(BaseModel):
    id: int
    team_id: int
    name: str
    priority: int
    labels: dict[str, str]
    tool: str
    rule: str
    min_severity: str
    levels: list[LevelIn]


@router.get("/teams/{team_id}/approval-routes", response_model=list[RouteOut])
def list_routes(team_id: Id, who: Who, db: DB) -> list[dict[str, Any]]:
    return config.list_routes(db, who, team_id)


@router.post("/teams/{team_id}/approval-routes", response_model=RouteOut, status_code=201)
def create_route(team_id: Id, body: RouteIn, who: Who, db: DB) -> dict[str, Any]:
    return config.create_route(
        db, who, team_id, name=body.name, priority=body.priority, labels=body.labels,
        tool=body.tool, rule=body.rule, min_severity=body.min_severity,
        steps=[config.LevelSpec(s.group_id, s.timeout_seconds, s.quorum)
               for s in body.levels])


@router.delete("/teams/{team_id}/approval-routes/{route_id}", status_code=204)
def remove_route(team_id: Id, route_id: Id, who: Who, db: DB) -> Response:
    """Archive the route: new asks no longer take it; those on it keep their levels."""
    config.archive_route(db, who, team_id, route_id)
    return Response(status_code=204)


class ApprovalSettingsIn(BaseModel):
    # The team's channels told of asks no route matches; [] tells nobody.
    fallback_channel_ids: list[Annotated[int, Field(ge=1, le=2_147_483_647)]] = Field(
        default_factory=list, max_length=50)


class ApprovalSettingsOut(BaseModel):
    team_id: int
    fallback_channel_ids: list[int]


@router.get("/teams/{team_id}/approval-settings", response_model=ApprovalSettingsOut)
def approval_settings(team_id: Id, who: Who, db: DB) -> dict[str, Any]:
    """The team's approval settings (managers only: they say where asks are sent)."""
    return fallback.get_settings(db, who, team_id)


@router.put("/teams/{team_id}/approval-settings", response_model=ApprovalSettingsOut)
def save_approval_settings(team_id: Id, body: ApprovalSettingsIn, who: Who,
                           db: DB) -> dict[str, Any]:
    """Set the channels told of asks no route matches (the team's own channels only)."""
    return fallback.save_settings(db, who, team_id, body.fallback_channel_ids)


class DelegationIn(BaseModel):
    to: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    starts: datetime | None = None
    ends: datetime


class DelegationOut(BaseModel):
    id: int
    from_: str | None = Field(alias="from")
    to: str | None
    starts: datetime
    ends: datetime
    revoked: datetime | None


@router.get("/delegations", response_model=list[DelegationOut], response_model_by_alias=True)
def my_delegations(who: Who, db: DB) -> list[dict[str, Any]]:
    return config.list_delegations(db, who)


@router.post("/delegations", response_model=DelegationOut, status_code=201,
             response_model_by_alias=True)
def create_delegation(body: DelegationIn, who: Who, db: DB) -> dict[str, Any]:
    return config.delegate(db, who, body.to, body.starts, body.ends)


@router.delete("/delegations/{delegation_id}", status_code=204)
def revoke_delegation(delegation_id: Id, who: Who, db: DB) -> Response:
    config.revoke_delegation(db, who, delegation_id)
    return Response(status_code=204)
