"""The approval workflow on the server: asks come in from runtimes, approvers vote, the
request is decided. Functions take a session and a principal, so the API and the
dashboard's pages call the same code.

Rules (the contract approvers see):
- Only the request's *current* level decides: the members of that level's group, or a user
  holding an active delegation from one of them (voting "on behalf of" that member).
- Quorum: the level needs N distinct approvers; the same person twice counts once, and a
  delegate voting for a member who also voted counts once.
- One deny from anyone entitled to vote at the level denies the request at once.
- Scope: an approve covers this exact action "once", or also the request's rules in the
  requesting session for N minutes ("rule-session"; only for a request asked by rules: an
  action that was not understood can only be approved once). The decided scope is the
  narrowest among the deciding level's approvals: any "once" makes it "once", else the
  fewest minutes. It is signed with the decision; the runtime makes the grants.
- Nobody approves their own agent's request: an approve by the requesting user (the
  request's `user` label), or on their behalf, is refused.
- Every step is a ServerEvent with `detail.request_id` (approval.requested, .notified,
  .escalated, .vote, .decided, .expired): the request's timeline.
- Each state change is a conditional UPDATE (state still pending, level unchanged), so
  concurrent votes, escalations and replicas cannot decide a request twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import HTTPException
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runestone.bounded import bounded
from runestone_server.approvals import wakeups
from runestone_server.approvals.models import (
    MAX_SCOPE_MINUTES,
    SCOPES,
    SEVERITIES,
    ApprovalLevel,
    ApprovalRequest,
    ApprovalRoute,
    ApprovalVote,
    ApproverGroup,
    ApproverGroupMember,
    Delegation,
)
from runestone_server.approvals.notifying import approval_link, notify_level
from runestone_server.approvals.purpose import stated_purpose
from runestone_server.approvals.routing import Ask, fallback_timeout, levels, pick_route
from runestone_server.auth import Principal
from runestone_server.events import record
from runestone_server.models import Membership, Runtime, ServerEvent, User, aware, utcnow

FALLBACK_ROLES = ("owner", "admin", "approver")
DECIDED = ("approved", "denied", "expired", "cancelled")


class Refused(HTTPException):
    """An approval action that cannot be done; `status_code` is what the API answers."""


@dataclass(frozen=True, slots=True)
class NewAsk:
    """What a runtime sends when its policy asks."""

    request_id: str
    action_hash: str
    tool: str
    summary: str = ""
    reason: str = ""
    rules: tuple[str, ...] = ()
    severity: str = "medium"
    input: dict[str, Any] = field(default_factory=dict)
    user: str = ""
    agent: str = ""
    session: str = ""
    mode: str = "wait"  # wait | defer: route it; ask: the host asks, record only


@dataclass(frozen=True, slots=True)
class RuntimeRef:
    """The calling runtime, detached from any session (long-polls hold none)."""

    pk: int
    org_id: int
    team_id: int
    runtime_id: str
    credential_hash: str
    labels: dict[str, str]

    @classmethod
    def of(cls, runtime: Runtime) -> RuntimeRef:
        return cls(runtime.id, runtime.org_id, runtime.team_id, runtime.runtime_id,
                   runtime.credential_hash, dict(runtime.labels or {}))


def now() -> datetime:
    return utcnow()


# --- asks from runtimes -----------------------------------------------------------------

def submit(db: Session, runtime: RuntimeRef, ask: NewAsk) -> ApprovalRequest:
    """Record, route and notify one ask. Idempotent per (runtime, request id): a runtime
    that retries after a lost answer gets the same request back."""
    existing = _by_request_id(db, runtime.pk, ask.request_id)
    if existing is not None:
        if existing.action_hash != ask.action_hash:
            raise Refused(409, "this request id was already used for another action")
        return existing
    severity = ask.severity if ask.severity in SEVERITIES else "critical"
    labels = runtime.labels
    # `runtime_user` is the person the runtime was enrolled for (pinned by the enrolment
    # token; a runtime cannot declare it), and is who asks when there is one; `declared_user`
    # is what the runtime says for this call. Self-approval is refused for each.
    pinned = labels.get("user", "")
    requester = {"user": pinned or ask.user, "declared_user": ask.user,
                 "runtime_user": pinned,
                 "agent": ask.agent or labels.get("agent", ""),
                 "host": labels.get("host", ""), "session": ask.session,
                 "runtime": runtime.runtime_id}
    host_asks = ask.mode == "ask"
    route = None if host_asks else pick_route(db, runtime.org_id, runtime.team_id, Ask(
        labels=labels, tool=ask.tool, rules=tuple(ask.rules), severity=severity))
    steps = levels(db, route.id if route else None)
    timeout = steps[0].timeout_seconds if steps else fallback_timeout()
    moment = now()
    approval = ApprovalRequest(
        org_id=runtime.org_id, team_id=runtime.team_id, runtime_pk=runtime.pk,
        request_id=ask.request_id, action_hash=ask.action_hash, tool=ask.tool[:200],
        summary=ask.summary, reason=ask.reason, rule=(ask.rules[0] if ask.rules else "")[:200],
        rules=list(ask.rules), severity=severity, requester=requester,
        input=bounded(ask.input),
        route_id=route.id if route else None, state="host" if host_asks else "pending",
        level=0, level_deadline=None if host_asks else moment + timedelta(seconds=timeout),
        created=moment, decided_reason="")
    db.add(approval)
    try:
        db.flush()
    except IntegrityError:  # the same ask arrived twice at once: the first one stands
        db.rollback()
        again = _by_request_id(db, runtime.pk, ask.request_id)
        if again is None:
            raise
        return again
    record(db, runtime.org_id, runtime.team_id, f"runtime:{runtime.runtime_id}",
           "approval.requested", {
               "request_id": ask.request_id, "approval_id": approval.id,
               "runtime_id": runtime.runtime_id, "tool": approval.tool,
               "rule": approval.rule, "rules": list(ask.rules), "severity": severity,
               "summary": ask.summary, "action_hash": ask.action_hash,
               "requester": requester, "route": route.name if route else None,
               "mode": "host" if host_asks else ask.mode})
    if not host_asks:
        group = db.get(ApproverGroup, steps[0].group_id) if steps else None
        notify_level(db, approval, 0, group)
    db.commit()
    return approval


def cancel_by_runtime(db: Session, runtime: RuntimeRef, request_id: str) -> bool:
    """The runtime stopped waiting: withdraw its pending ask (approvers see it go)."""
    approval = _by_request_id(db, runtime.pk, request_id)
    if approval is None or approval.state != "pending":
        return False
    return decide(db, approval, "cancelled", "the runtime stopped waiting",
                  f"runtime:{runtime.runtime_id}", kind="approval.cancelled")


def _by_request_id(db: Session, runtime_pk: int, request_id: str) -> ApprovalRequest | None:
    return db.scalar(select(ApprovalRequest).where(ApprovalRequest.runtime_pk == runtime_pk,
                                                   ApprovalRequest.request_id == request_id))


def runtime_view(db: Session, runtime: RuntimeRef, request_id: str,
                 sign: Any) -> dict[str, Any] | None:
    """What the runtime learns: the state and, once decided, the server's signature over
    (runtime id, request id, action hash, decision, hash of the runtime's credential)."""
    from runestone.remote.signing import decision_message

    approval = _by_request_id(db, runtime.pk, request_id)
    if approval is None:
        return None
    view: dict[str, Any] = {
        "id": approval.id, "request_id": approval.request_id, "state": approval.state,
        "action_hash": approval.action_hash, "runtime_id": runtime.runtime_id,
        "level": approval.level, "link": approval_link(approval),
        "reason": approval.decided_reason, "approvers": [], "signature": "",
        "scope": "once", "minutes": 0}
    if approval.state in DECIDED:
        if approval.state == "approved":
            view["scope"], view["minutes"] = approval.scope, approval.scope_minutes
        view["approvers"] = approver_names(db, approval)
        view["signature"] = sign(decision_message(
            runtime.runtime_id, approval.request_id, approval.action_hash, approval.state,
            runtime.credential_hash, view["scope"], view["minutes"]))
    return view


# --- who may decide ---------------------------------------------------------------------

def level_of(db: Session, approval: ApprovalRequest, level: int) -> ApprovalLevel | None:
    steps = levels(db, approval.route_id)
    return steps[level] if level < len(steps) else None


def eligible_users(db: Session, approval: ApprovalRequest, level: int) -> set[int]:
    """The users entitled to vote at `level` in their own name."""
    if approval.route_id is None:
        return set(db.scalars(select(Membership.user_id).where(
            Membership.team_id == approval.team_id, Membership.org_id == approval.org_id,
            Membership.role.in_(FALLBACK_ROLES))))
    step = level_of(db, approval, level)
    if step is None:
        return set()
    return set(db.scalars(select(ApproverGroupMember.user_id).where(
        ApproverGroupMember.group_id == step.group_id,
        ApproverGroupMember.org_id == approval.org_id)))


def delegators_of(db: Session, org_id: int, user_id: int,
                  moment: datetime | None = None) -> set[int]:
    """Users who have delegated to `user_id` for a period that includes `moment`."""
    moment = moment or now()
    return set(db.scalars(select(Delegation.from_user_id).where(
        Delegation.org_id == org_id, Delegation.to_user_id == user_id,
        Delegation.revoked.is_(None), Delegation.starts <= moment, Delegation.ends > moment)))


def standing(db: Session, approval: ApprovalRequest, user: User) -> tuple[int, int | None] | None:
    """(the acting user, the member they stand in for or None) at the current level."""
    eligible = eligible_users(db, approval, approval.level)
    if user.id in eligible:
        return user.id, None
    behalf = sorted(delegators_of(db, approval.org_id, user.id) & eligible)
    return (user.id, behalf[0]) if behalf else None


def _same_person(user: User | None, name: str) -> bool:
    return bool(user and name) and user.username.casefold() == name.casefold()


def visible(db: Session, who: Principal, approval: ApprovalRequest) -> bool:
    """Team members (any role), org admins and anyone who may vote now see a request."""
    if approval.org_id != who.org_id:
        return False
    if who.user.org_admin:
        return True
    member = db.scalar(select(Membership.id).where(Membership.team_id == approval.team_id,
                                                   Membership.user_id == who.user.id))
    return member is not None or standing(db, approval, who.user) is not None


def load(db: Session, who: Principal, approval_id: int) -> ApprovalRequest:
    approval = db.scalar(select(ApprovalRequest).where(
        ApprovalRequest.id == approval_id, ApprovalRequest.org_id == who.org_id))
    if approval is None or not visible(db, who, approval):
        raise Refused(404, "no such approval request")
    return approval


# --- approvers --------------------------------------------------------------------------

def inbox(db: Session, who: Principal, limit: int = 200) -> list[ApprovalRequest]:
    """Pending requests that I, or someone who delegated to me, may decide now."""
    people = {who.user.id, *delegators_of(db, who.org_id, who.user.id)}
    groups = set(db.scalars(select(ApproverGroupMember.group_id).where(
        ApproverGroupMember.org_id == who.org_id, ApproverGroupMember.user_id.in_(people))))
    teams = set(db.scalars(select(Membership.team_id).where(
        Membership.org_id == who.org_id, Membership.user_id.in_(people),
        Membership.role.in_(FALLBACK_ROLES))))
    routed = select(ApprovalRequest).join(ApprovalLevel, (
        ApprovalLevel.route_id == ApprovalRequest.route_id)
        & (ApprovalLevel.position == ApprovalRequest.level)).where(
        ApprovalRequest.org_id == who.org_id, ApprovalRequest.state == "pending",
        ApprovalLevel.group_id.in_(groups))
    fallback = select(ApprovalRequest).where(
        ApprovalRequest.org_id == who.org_id, ApprovalRequest.state == "pending",
        ApprovalRequest.route_id.is_(None), ApprovalRequest.team_id.in_(teams))
    found = {a.id: a for a in db.scalars(routed.limit(limit))}
    found.update({a.id: a for a in db.scalars(fallback.limit(limit))})
    return sorted(found.values(), key=lambda a: (aware(a.created), a.id))[:limit]


def team_requests(db: Session, org_id: int, team_id: int, state: str | None = None,
                  limit: int = 200) -> list[ApprovalRequest]:
    query = select(ApprovalRequest).where(ApprovalRequest.org_id == org_id,
                                          ApprovalRequest.team_id == team_id)
    if state:
        query = query.where(ApprovalRequest.state == state)
    return list(db.scalars(query.order_by(ApprovalRequest.id.desc()).limit(limit)))


def vote(db: Session, who: Principal, approval_id: int, choice: str, reason: str = "",
         scope: str = "once", minutes: int = 30) -> ApprovalRequest:
    """Cast one vote at the current level, then decide if the level has decided. `scope`
    and `minutes` say what an approve covers (a deny has no scope: it is stored "once")."""
    if choice not in ("approve", "deny"):
        raise Refused(400, "a vote is approve or deny")
    if scope not in SCOPES:
        raise Refused(400, f"the scope is one of {', '.join(SCOPES)}")
    if scope == "rule-session" and not 1 <= minutes <= MAX_SCOPE_MINUTES:
        raise Refused(400, f"a rule-session approval lasts 1 to {MAX_SCOPE_MINUTES} minutes")
    approval = load(db, who, approval_id)
    if choice == "approve" and scope == "rule-session" and not approval.rules:
        raise Refused(400, "this request was not asked by a rule (the action was not fully "
                           "understood), so only this exact action can be approved, once")
    if choice != "approve" or scope == "once":
        scope, minutes = "once", 0
    if approval.state != "pending":
        raise Refused(409, f"this request is {approval.state}; it can no longer be decided")
    position = standing(db, approval, who.user)
    if position is None:
        raise Refused(403, "you are not an approver at this request's current level")
    user_id, behalf = position
    requesters = [str(approval.requester.get(key) or "")
                  for key in ("user", "runtime_user", "declared_user")]
    behalf_user = db.get(User, behalf) if behalf is not None else None
    if choice == "approve" and any(_same_person(person, name) for person in
                                   (who.user, behalf_user) for name in requesters):
        raise Refused(403, "nobody can approve their own agent's request")
    level = approval.level
    db.add(ApprovalVote(org_id=approval.org_id, approval_id=approval.id, level=level,
                        user_id=user_id, on_behalf_of=behalf, vote=choice,
                        reason=reason[:2000], scope=scope, minutes=minutes, created=now()))
    try:
        db.flush()
    except IntegrityError as exc:
        db.rollback()
        raise Refused(409, "you already voted at this level") from exc
    record(db, approval.org_id, approval.team_id, who.name, "approval.vote", {
        "request_id": approval.request_id, "approval_id": approval.id, "level": level,
        "vote": choice, "reason": reason[:2000], "scope": scope, "minutes": minutes,
        "user": who.user.username,
        "on_behalf_of": behalf_user.username if behalf_user else None})
    db.commit()
    settle(db, approval.id, actor=who.name)
    db.refresh(approval)
    return approval


def settle(db: Session, approval_id: int, actor: str = "server") -> str | None:
    """Decide the request if its current level has: one deny, or a quorum of approvals."""
    approval = db.get(ApprovalRequest, approval_id)
    if approval is None:
        return None
    db.refresh(approval)
    if approval.state != "pending":
        return None
    step = level_of(db, approval, approval.level)
    quorum = max(1, step.quorum) if step is not None else 1
    votes = list(db.scalars(select(ApprovalVote).where(
        ApprovalVote.approval_id == approval.id, ApprovalVote.level == approval.level)
        .order_by(ApprovalVote.id)))
    denies = [v for v in votes if v.vote == "deny"]  # a deny stands even if its voter left
    # An approval counts only while its voter may still vote here: out of the group, or a
    # delegation revoked or over, it no longer makes the quorum.
    eligible = eligible_users(db, approval, approval.level)
    approving = [v for v in votes if v.vote == "approve" and (
        v.user_id in eligible if v.on_behalf_of is None else
        v.on_behalf_of in eligible
        and v.on_behalf_of in delegators_of(db, approval.org_id, v.user_id))]
    approvers = {v.on_behalf_of or v.user_id for v in approving}
    scope: tuple[str, int] = ("once", 0)
    if denies:
        outcome, why = "denied", denies[0].reason or "denied by an approver"
    elif len(approvers) >= quorum:
        outcome, why = "approved", "; ".join(v.reason for v in votes if v.reason)
        scope = narrowest([(v.scope, v.minutes) for v in approving])
    else:
        return None
    return outcome if decide(db, approval, outcome, why, actor, scope=scope) else None


def narrowest(scopes: list[tuple[str, int]]) -> tuple[str, int]:
    """What every approver agreed to: "once" if any approval was for once, else the rules
    for the session for the fewest minutes anyone gave."""
    sessions = [minutes for scope, minutes in scopes if scope == "rule-session"]
    if not scopes or len(sessions) < len(scopes):
        return "once", 0
    return "rule-session", min(sessions)


def decide(db: Session, approval: ApprovalRequest, state: str, reason: str,
           actor: str, kind: str = "approval.decided",
           scope: tuple[str, int] = ("once", 0)) -> bool:
    """Move a pending request at its current level to `state` (with the scope an approval
    covers); False if it had moved."""
    level = approval.level
    scope_name, scope_minutes = scope if state == "approved" else ("once", 0)
    moved = db.execute(update(ApprovalRequest).where(
        ApprovalRequest.id == approval.id, ApprovalRequest.state == "pending",
        ApprovalRequest.level == level).values(
        state=state, decided=now(), decided_reason=reason[:2000], scope=scope_name,
        scope_minutes=scope_minutes).execution_options(synchronize_session=False))
    if moved.rowcount != 1:
        db.rollback()
        return False
    record(db, approval.org_id, approval.team_id, actor, kind, {
        "request_id": approval.request_id, "approval_id": approval.id, "state": state,
        "level": level, "reason": reason[:2000], "scope": scope_name,
        "minutes": scope_minutes,
        "approvers": approver_names(db, approval) if state == "approved" else [],
        "delegated": delegated_votes(db, approval) if state == "approved" else []})
    wakeups.announce(db, approval.id)
    db.commit()
    wakeups.wake(approval.id)
    return True


def approver_names(db: Session, approval: ApprovalRequest) -> list[str]:
    """Who approved at the level that decided (earlier levels' votes did not decide it)."""
    rows = db.execute(select(User.username).join(ApprovalVote, ApprovalVote.user_id == User.id)
                      .where(ApprovalVote.approval_id == approval.id,
                             ApprovalVote.level == approval.level,
                             ApprovalVote.vote == "approve").order_by(ApprovalVote.id))
    return [name for (name,) in rows]


def delegated_votes(db: Session, approval: ApprovalRequest) -> list[dict[str, str]]:
    """The deciding level's approvals cast on someone's behalf: who voted, for whom. The
    compliance report shows it (a delegate's approval is the delegator's responsibility)."""
    rows = db.execute(select(ApprovalVote.user_id, ApprovalVote.on_behalf_of).where(
        ApprovalVote.approval_id == approval.id, ApprovalVote.level == approval.level,
        ApprovalVote.vote == "approve", ApprovalVote.on_behalf_of.is_not(None))
        .order_by(ApprovalVote.id)).all()
    if not rows:
        return []
    people = {user for user, _ in rows} | {behalf for _, behalf in rows}
    names = dict(db.execute(select(User.id, User.username).where(User.id.in_(people))).all())
    return [{"approver": names.get(user, "?"), "for": names.get(behalf, "?")}
            for user, behalf in rows]


# --- what a page or the API shows -------------------------------------------------------

def timeline(db: Session, approval: ApprovalRequest) -> list[ServerEvent]:
    """The request's steps, oldest first, from the server's event stream."""
    events = db.scalars(select(ServerEvent).where(
        ServerEvent.org_id == approval.org_id, ServerEvent.kind.like("approval.%"),
        ServerEvent.detail["request_id"].as_string() == approval.request_id)
        .order_by(ServerEvent.id))
    return [e for e in events if e.detail.get("approval_id", approval.id) == approval.id]


def summary(approval: ApprovalRequest) -> dict[str, Any]:
    return {"id": approval.id, "request_id": approval.request_id,
            "team_id": approval.team_id, "tool": approval.tool, "summary": approval.summary,
            "rule": approval.rule, "severity": approval.severity,
            "requester": approval.requester, "state": approval.state,
            "level": approval.level, "level_deadline": aware(approval.level_deadline),
            "created": aware(approval.created), "link": approval_link(approval)}


def describe(db: Session, who: Principal, approval: ApprovalRequest) -> dict[str, Any]:
    """Everything an approver needs to decide, and the request's whole story."""
    steps = levels(db, approval.route_id)
    groups = {g.id: g.name for g in db.scalars(select(ApproverGroup).where(
        ApproverGroup.id.in_([s.group_id for s in steps])))} if steps else {}
    route = db.get(ApprovalRoute, approval.route_id) if approval.route_id else None
    votes = list(db.scalars(select(ApprovalVote).where(
        ApprovalVote.approval_id == approval.id).order_by(ApprovalVote.id)))
    people = {v.user_id for v in votes} | {v.on_behalf_of for v in votes if v.on_behalf_of}
    names = dict(db.execute(select(User.id, User.username).where(
        User.org_id == approval.org_id, User.id.in_(people))).all()) if people else {}
    runtime = db.get(Runtime, approval.runtime_pk)
    position = standing(db, approval, who.user) if approval.state == "pending" else None
    return {
        **summary(approval), "reason": approval.reason, "rules": approval.rules,
        "action_hash": approval.action_hash, "input": approval.input,
        "purpose": stated_purpose(approval.input),
        "runtime_id": runtime.runtime_id if runtime else "",
        "route": route.name if route else None,
        "levels": [{"position": s.position, "group": groups.get(s.group_id, "?"),
                    "timeout_seconds": s.timeout_seconds, "quorum": s.quorum}
                   for s in steps] or [{"position": 0, "group": "team approvers",
                                        "timeout_seconds": None, "quorum": 1}],
        "decided": aware(approval.decided), "decided_reason": approval.decided_reason,
        "scope": approval.scope, "scope_minutes": approval.scope_minutes,
        "votes": [{"user": names.get(v.user_id, "?"), "vote": v.vote, "reason": v.reason,
                   "scope": v.scope, "minutes": v.minutes,
                   "level": v.level, "on_behalf_of": names.get(v.on_behalf_of)
                   if v.on_behalf_of else None, "created": aware(v.created)} for v in votes],
        "timeline": [{"kind": e.kind, "actor": e.actor, "created": aware(e.created),
                      "detail": e.detail} for e in timeline(db, approval)],
        "can_vote": position is not None,
    }
