"""Grants: pre-approvals an approver issues on the server, pulled by enrolled runtimes like
policy, and spent atomically.

A grant names an exact action (the runtime's `approvals.action_key`: tool, input, working
directory) or a rule in the runtime's rule language, for the team's runtimes whose labels
match, optionally only some sessions or agents, with a use count and an expiry. Each
runtime receives it signed by the server key and bound to that runtime
(`runestone.remote.signing.grant_message`), so an altered grant fails its signature.

Spending: online, each use is counted here by one conditional UPDATE (`used + reserved <
uses`, not revoked, not expired), so runtimes racing for the last use cannot overspend;
the runtime allows only on the signed receipt. Offline, a runtime spends only the uses
allotted to it when it pulled (`offline_uses` per runtime, reserved from the pool at once
by the same kind of conditional UPDATE). Revoking stops online spending at once and drops
the grant from the next pull; every issue, use and revocation is a server event.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from runestone.remote.signing import grant_message, grant_use_message
from runestone_server.auth import Principal
from runestone_server.events import record
from runestone_server.govern.models import Grant, GrantAllotment, GrantUse
from runestone_server.models import Runtime, Team, aware
from runestone_server.security import ServerKey

RULE_HEADER = '[policy]\nname = "grant"\ndefault = "ask"\n\n'
RULE_FIELDS_SET_HERE = ("id", "decision", "reason")


def new_grant_id() -> str:
    return "grt_" + os.urandom(12).hex()


def rule_table(grant_id: str, rule: dict[str, Any]) -> dict[str, Any]:
    """The grant's rule as an allow rule the runtime compiles: its id and reason name the
    grant (what fired shows in the decision and the audit)."""
    return {"id": f"grant.{grant_id}", "decision": "allow",
            "reason": f"Pre-approved on the control plane (grant {grant_id})",
            **{k: v for k, v in rule.items() if k not in RULE_FIELDS_SET_HERE}}


def check_rule(rule: dict[str, Any]) -> None:
    """A 400 unless the rule compiles with the runtime's own loader."""
    from runestone.policy import PolicyError
    from runestone.policy.learn import to_toml
    from runestone.policy.loader import compile_policy_text

    if not rule or set(rule) <= set(RULE_FIELDS_SET_HERE):
        raise HTTPException(400, "the rule matches nothing: give fields such as program, "
                                 "subcommand, domain, path or tool")
    try:
        compile_policy_text(RULE_HEADER + to_toml(rule_table("grt_check", rule)),
                            source="grant rule")
    except (PolicyError, TypeError) as exc:
        raise HTTPException(400, f"the rule does not compile: {exc}") from exc


def issue(db: Session, who: Principal, team: Team, *, action: dict[str, Any] | None,
          rule: dict[str, Any] | None, labels: dict[str, str], sessions: list[str],
          agents: list[str], uses: int, minutes: int, offline_uses: int,
          reason: str) -> Grant:
    from runestone.actions import Action, ActionError
    from runestone.actions.canonical import canonical_hash
    from runestone.audit.records import summarize

    if (action is None) == (rule is None):
        raise HTTPException(400, "give either an exact action or a rule")
    if offline_uses > uses:
        raise HTTPException(400, "offline_uses (per runtime) cannot exceed uses")
    key, summary = None, ""
    if action is not None:
        try:
            parsed = Action(str(action.get("tool", "")), action.get("input") or {},
                            str(action.get("cwd", "")))
        except (ActionError, TypeError) as exc:
            raise HTTPException(400, f"not an action: {exc}") from exc
        key = canonical_hash({"tool": parsed.tool, "input": parsed.input, "cwd": parsed.cwd})
        summary = summarize(parsed)
    else:
        assert rule is not None
        check_rule(rule)
        summary = "; ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}"
                            for k, v in sorted(rule.items()))[:500]
    grant = Grant(org_id=team.org_id, team_id=team.id, grant_id=new_grant_id(),
                  action_key=key, summary=summary, rule=rule, labels=labels,
                  sessions=sessions, agents=agents, uses=uses, used=0, reserved=0,
                  offline_uses=offline_uses, reason=reason, created_by=who.user.id,
                  expires=datetime.now(UTC) + timedelta(minutes=minutes))
    db.add(grant)
    db.flush()
    record(db, team.org_id, team.id, who.name, "grant.issued",
           {"grant_id": grant.grant_id, "summary": summary, "uses": uses,
            "expires": grant.expires.isoformat(), "labels": labels, "sessions": sessions,
            "agents": agents, "offline_uses": offline_uses, "reason": reason})
    db.commit()
    return grant


def state(grant: Grant, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    if grant.revoked is not None:
        return "revoked"
    if aware(grant.expires) <= now:  # type: ignore[operator]
        return "expired"
    if grant.used + grant.reserved >= grant.uses:
        return "spent" if not grant.reserved else "allotted"
    return "active"


def out(grant: Grant) -> dict[str, Any]:
    return {"grant_id": grant.grant_id, "team_id": grant.team_id,
            "action_key": grant.action_key, "rule": grant.rule, "summary": grant.summary,
            "labels": grant.labels, "sessions": grant.sessions, "agents": grant.agents,
            "uses": grant.uses, "used": grant.used, "reserved": grant.reserved,
            "offline_uses": grant.offline_uses, "expires": aware(grant.expires),
            "reason": grant.reason, "created": aware(grant.created),
            "revoked": aware(grant.revoked), "revoked_reason": grant.revoked_reason,
            "state": state(grant)}


def find(db: Session, team: Team, grant_id: str) -> Grant:
    grant = db.scalar(select(Grant).where(Grant.team_id == team.id, Grant.org_id ==
                                          team.org_id, Grant.grant_id == grant_id))
    if grant is None:
        raise HTTPException(404, "no such grant")
    return grant


def revoke(db: Session, who: Principal, grant: Grant, reason: str) -> Grant:
    """Idempotent: the first revocation stands."""
    moved = db.execute(update(Grant).where(Grant.id == grant.id, Grant.revoked.is_(None))
                       .values(revoked=datetime.now(UTC), revoked_by=who.user.id,
                               revoked_reason=reason)
                       .execution_options(synchronize_session=False)).rowcount
    if moved:
        record(db, grant.org_id, grant.team_id, who.name, "grant.revoked",
               {"grant_id": grant.grant_id, "reason": reason})
    db.commit()
    db.refresh(grant)
    return grant


def _for_runtime(grant: Grant, runtime: Runtime) -> bool:
    return grant.team_id == runtime.team_id and grant.org_id == runtime.org_id and \
        all(runtime.labels.get(k) == v for k, v in grant.labels.items())


def _allot(db: Session, grant: Grant, runtime: Runtime) -> int:
    """The uses set aside for this runtime to spend offline (reserved once, at its first
    pull of the grant; as many as remain when fewer do)."""
    mine = db.scalar(select(GrantAllotment).where(GrantAllotment.grant_pk == grant.id,
                                                  GrantAllotment.runtime_pk == runtime.id))
    if mine is not None:
        return mine.count
    if not grant.offline_uses:
        return 0
    for want in range(grant.offline_uses, 0, -1):
        moved = db.execute(update(Grant).where(
            Grant.id == grant.id, Grant.used + Grant.reserved + want <= Grant.uses)
            .values(reserved=Grant.reserved + want)
            .execution_options(synchronize_session=False)).rowcount
        if moved:
            db.add(GrantAllotment(org_id=grant.org_id, grant_pk=grant.id,
                                  runtime_pk=runtime.id, count=want))
            return want
    return 0


def document(grant: Grant, allotted: int) -> dict[str, Any]:
    """The grant as a runtime receives it (and as the server signs it)."""
    expires = aware(grant.expires)
    assert expires is not None
    match = {"action_key": grant.action_key} if grant.action_key else \
        {"rule": rule_table(grant.grant_id, grant.rule or {})}
    return {"grant_id": grant.grant_id, "team_id": grant.team_id, "match": match,
            "summary": grant.summary, "sessions": list(grant.sessions),
            "agents": list(grant.agents), "uses": grant.uses,
            "expires": int(expires.timestamp()), "allotted": allotted}


def for_runtime(db: Session, key: ServerKey, runtime: Runtime) -> list[dict[str, Any]]:
    """The live grants for this runtime, each signed for it; allots offline uses."""
    now = datetime.now(UTC)
    found = []
    grants = db.scalars(select(Grant).where(
        Grant.team_id == runtime.team_id, Grant.org_id == runtime.org_id,
        Grant.revoked.is_(None), Grant.expires > now).order_by(Grant.id)).all()
    for grant in grants:
        if not _for_runtime(grant, runtime):
            continue
        allotted = _allot(db, grant, runtime)
        db.refresh(grant)
        if grant.used + grant.reserved >= grant.uses and not allotted:
            continue  # spent, and nothing set aside for this runtime
        doc = document(grant, allotted)
        found.append({"grant": doc,
                      "signature": key.sign(grant_message(runtime.runtime_id, doc))})
    db.commit()
    return found


def spend(db: Session, key: ServerKey, runtime: Runtime, grant_id: str, action_key: str,
          session: str, agent: str) -> dict[str, Any]:
    """Count one use for this runtime, atomically; the signed receipt, or why not (409)."""
    grant = db.scalar(select(Grant).where(Grant.grant_id == grant_id,
                                          Grant.org_id == runtime.org_id))
    if grant is None or not _for_runtime(grant, runtime):
        raise HTTPException(404, "no such grant for this runtime")
    if grant.action_key and grant.action_key != action_key:
        raise HTTPException(409, "this grant is for another action")
    if grant.sessions and session not in grant.sessions:
        raise HTTPException(409, "this grant is not for this session")
    if grant.agents and agent not in grant.agents:
        raise HTTPException(409, "this grant is not for this agent")
    now = datetime.now(UTC)
    moved = db.execute(update(Grant).where(
        Grant.id == grant.id, Grant.revoked.is_(None), Grant.expires > now,
        Grant.used + Grant.reserved < Grant.uses).values(used=Grant.used + 1)
        .execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        db.rollback()
        db.refresh(grant)
        why = state(grant, now)
        raise HTTPException(409, f"grant {grant_id} is {why}" + (
            f" ({grant.revoked_reason})" if why == "revoked" and grant.revoked_reason else "")
            + ("; the uses left are allotted to runtimes for offline use"
               if why == "allotted" else ""))
    use = db.scalar(select(Grant.used).where(Grant.id == grant.id)
                    .execution_options(populate_existing=True))
    assert use is not None
    db.add(GrantUse(org_id=grant.org_id, grant_pk=grant.id, runtime_pk=runtime.id,
                    action_key=action_key, session=session[:200], agent=agent[:200],
                    use=use))
    record(db, grant.org_id, grant.team_id, f"runtime:{runtime.runtime_id}", "grant.used",
           {"grant_id": grant_id, "use": use, "uses": grant.uses, "session": session[:200],
            "agent": agent[:200], "action_key": action_key})
    db.commit()
    return {"grant_id": grant_id, "use": use, "uses": grant.uses,
            "signature": key.sign(grant_use_message(runtime.runtime_id, grant_id, action_key,
                                                    use, runtime.credential_hash))}
