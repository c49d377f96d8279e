"""Rules proposed from what a team's people approved, over the team's ingested audit.

The engine is the runtime's own `policy suggest` (runestone.policy.suggest): the asks of
every runtime of the team and how they ended (approved on the control plane, locally, or by
the host's own prompt) are read from the ingested entries; the smallest general rule that
would have allowed each approved ask is learned in the runtime's rule language; rules that
differ only in their places are merged; and each proposal is replayed over the whole
history against the team's published policy: the asks it would have saved, every past
action it would newly allow (those a human denied first), and a refusal when it would let
through anything the policy denies or allow anything not fully understood.

A proposal is only text until a policy author makes it a draft version (`draft`); the draft
is published, or not, like any other version. Nothing here publishes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runestone.actions.canonical import canonical_json
from runestone_server.audit.models import AuditEntry
from runestone_server.govern.models import ProposalSettings
from runestone_server.models import PolicyVersion, Publication, Runtime, Team, User

KINDS = ("request", "decision", "approval", "result")
MAX_ENTRIES = 200_000  # the most entries one proposal run reads (the oldest are left out)
DEFAULTS = {"min_approvals": 3, "min_people": 1}


def rule_hash(rule: dict[str, Any]) -> str:
    """What names a proposal across requests: its rule, not its (growing) figures."""
    return hashlib.sha256(canonical_json(rule)).hexdigest()


def thresholds(db: Session, team: Team) -> dict[str, int]:
    row = db.scalar(select(ProposalSettings).where(ProposalSettings.team_id == team.id))
    if row is None:
        return dict(DEFAULTS)
    return {"min_approvals": row.min_approvals, "min_people": row.min_people}


def save_thresholds(db: Session, team: Team, min_approvals: int, min_people: int) -> None:
    row = db.scalar(select(ProposalSettings).where(ProposalSettings.team_id == team.id))
    if row is None:
        row = ProposalSettings(org_id=team.org_id, team_id=team.id)
        db.add(row)
    row.min_approvals, row.min_people = min_approvals, min_people
    row.updated = datetime.now(UTC)


def base_version(db: Session, team: Team) -> PolicyVersion:
    """The policy proposals are made against: the newest team-wide publication, else the
    newest version; none is a 409 that says what to do."""
    for publication in db.scalars(select(Publication).where(
            Publication.team_id == team.id).order_by(Publication.id.desc())):
        if not publication.selector:
            version = db.get(PolicyVersion, publication.version_id)
            if version is not None:
                return version
    newest = db.scalar(select(PolicyVersion).where(PolicyVersion.team_id == team.id)
                       .order_by(PolicyVersion.number.desc()).limit(1))
    if newest is None:
        raise HTTPException(409, "the team has no policy version; proposals are rules added "
                                 "to one, so save a version first")
    return newest


def _entries(db: Session, team: Team, since: datetime) -> Iterator[dict[str, Any]]:
    rows = db.execute(select(AuditEntry.runtime_id, AuditEntry.entry).where(
        AuditEntry.org_id == team.org_id, AuditEntry.team_id == team.id,
        AuditEntry.time >= since, AuditEntry.kind.in_(KINDS)).order_by(
        AuditEntry.runtime_id, AuditEntry.seq).limit(MAX_ENTRIES))
    for runtime_id, entry in rows:
        if isinstance(entry, dict):
            yield {**entry, "_runtime": runtime_id}


def name_the_people(db: Session, team: Team, history: Any) -> None:
    """Who decided each ask routed through the control plane, by user name: a runtime
    records a server verdict as `server:<approvers>` (and a denial as `server:denied`), so
    the thresholds' "different people" and the denied-by column come from the votes."""
    from runestone_server.approvals.models import ApprovalRequest, ApprovalVote

    runtimes = dict(db.execute(select(Runtime.id, Runtime.runtime_id).where(
        Runtime.team_id == team.id, Runtime.org_id == team.org_id)).all())
    wanted = sorted({ask.request_id for ask in history.asks.values()})
    for start in range(0, len(wanted), 500):
        requests = db.execute(select(ApprovalRequest.id, ApprovalRequest.runtime_pk,
                                     ApprovalRequest.request_id).where(
            ApprovalRequest.team_id == team.id,
            ApprovalRequest.request_id.in_(wanted[start:start + 500]))).all()
        votes: dict[int, list[tuple[str, str]]] = {}
        for approval_id, username, vote in db.execute(select(
                ApprovalVote.approval_id, User.username, ApprovalVote.vote).join(
                User, User.id == ApprovalVote.user_id).where(
                ApprovalVote.approval_id.in_([r.id for r in requests]))):
            votes.setdefault(approval_id, []).append((username, vote))
        for row in requests:
            ask = history.asks.get(row.request_id)
            if ask is None or ask.runtime != runtimes.get(row.runtime_pk):
                continue
            for field, vote in (("approvers", "approve"), ("denied_by", "deny")):
                people = {u for u, v in votes.get(row.id, []) if v == vote}
                mine = getattr(ask, field)
                if people and any(p.startswith("server:") for p in mine):
                    setattr(ask, field, {p for p in mine if not p.startswith("server:")}
                            | people)


def propose(db: Session, team: Team, days: int) -> dict[str, Any]:
    """Every proposal the team's history supports under its thresholds, with its replay."""
    from runestone.policy import PolicyError
    from runestone.policy.loader import compile_policy_text
    from runestone.policy.suggest import read_history, suggest

    base = base_version(db, team)
    try:
        policy = compile_policy_text(base.text, source=f"version {base.number}")
    except PolicyError as exc:
        raise HTTPException(409, f"version {base.number} does not load: {exc}") from exc
    since = datetime.now(UTC) - timedelta(days=days)
    read = db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.org_id == team.org_id, AuditEntry.team_id == team.id,
        AuditEntry.time >= since, AuditEntry.kind.in_(KINDS))) or 0
    history = read_history(_entries(db, team, since))
    name_the_people(db, team, history)
    limits = thresholds(db, team)
    result = suggest(history, policy, min_approvals=limits["min_approvals"],
                     min_people=limits["min_people"])
    proposals = []
    for proposal in result.proposals:
        out = proposal.to_json()
        out["rule_hash"] = rule_hash(proposal.rule)
        out["people"] = len(proposal.approvers)
        proposals.append(out)
    return {"team_id": team.id, "base": {"number": base.number, "hash": base.hash},
            "since": since.isoformat(), "entries": min(read, MAX_ENTRIES),
            "truncated": read > MAX_ENTRIES, "thresholds": limits, "asks": result.asks,
            "approved": result.approved, "proposals": proposals,
            "not_learned": result.not_learned}


def draft_text(base: PolicyVersion, toml: str) -> str:
    """The base version's text with the proposed rule appended (its comment saying where
    it came from)."""
    return base.text.rstrip("\n") + "\n\n" + toml.strip("\n") + "\n"


def find(found: dict[str, Any], wanted: str) -> dict[str, Any]:
    for proposal in found["proposals"]:
        if proposal["rule_hash"] == wanted:
            return proposal
    raise HTTPException(404, "no such proposal now (the evidence or the policy changed); "
                             "list the proposals again")
