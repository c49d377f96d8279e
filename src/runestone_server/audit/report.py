"""The compliance report for a period: who approved what, which actions were denied, which
policy changes were made, and whether each runtime's audit chain is intact.

Everything comes from stored facts: the runtimes' own entries (decisions, local approvals),
the server's events (approvals routed through the server, policy versions and publications)
and the server's chain state per runtime (kept by ingest, which verifies every link). Lists
are capped (`LIST_LIMIT`, with the total beside them) so a busy month stays a readable
report; the export gives every row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runestone_server.audit.models import AuditChain, AuditEntry
from runestone_server.audit.search import LISTED, Scope, listed, scoped, utc
from runestone_server.models import Runtime, ServerEvent

LIST_LIMIT = 1000
POLICY_KINDS = ("policy.version", "policy.published")
SERVER_APPROVAL_KINDS = ("approval.decided", "approval.expired")


def _unindexed(column: Any) -> Any:
    """`column || ''`: the same values, but no index can hand them over in order. Without it
    SQLite walks a whole (tenant, rule, time) index to avoid sorting a GROUP BY, instead of
    reading only the period from the time index."""
    return column.concat("")


def _in_period(scope: Scope, since: datetime, until: datetime) -> list[Any]:
    return [*scoped(scope), AuditEntry.time >= since, AuditEntry.time < until]


def _events(db: Session, scope: Scope, since: datetime, until: datetime,
            kinds: tuple[str, ...]) -> list[ServerEvent]:
    where = [ServerEvent.org_id == scope.org_id, ServerEvent.kind.in_(kinds),
             ServerEvent.created >= since, ServerEvent.created < until]
    if scope.team_id is not None:
        where.append(ServerEvent.team_id == scope.team_id)
    return list(db.scalars(select(ServerEvent).where(*where).order_by(
        ServerEvent.created, ServerEvent.id).limit(LIST_LIMIT + 1)))


def _count_events(db: Session, scope: Scope, since: datetime, until: datetime,
                  kinds: tuple[str, ...]) -> int:
    where = [ServerEvent.org_id == scope.org_id, ServerEvent.kind.in_(kinds),
             ServerEvent.created >= since, ServerEvent.created < until]
    if scope.team_id is not None:
        where.append(ServerEvent.team_id == scope.team_id)
    return db.scalar(select(func.count()).select_from(ServerEvent).where(*where)) or 0


def _event(ev: ServerEvent) -> dict[str, Any]:
    return {"time": utc(ev.created).isoformat(), "kind": ev.kind, "actor": ev.actor,
            "team_id": ev.team_id, "detail": ev.detail}


def _requests(db: Session, scope: Scope, request_ids: set[str]) -> dict[str, AuditEntry]:
    """The request entries behind approvals, for what was approved (tool, summary)."""
    found: dict[str, AuditEntry] = {}
    ids = sorted(request_ids)
    for start in range(0, len(ids), 500):
        for entry in db.scalars(select(AuditEntry).where(
                *scoped(scope), AuditEntry.kind == "request",
                AuditEntry.request_id.in_(ids[start:start + 500]))):
            found.setdefault(entry.request_id or "", entry)
    return found


def approvers_of(stored: str | None) -> list[str]:
    """The people an approval entry names: `server:alice,bob` (the control plane's
    approvers, as the runtime records them) is alice and bob; a local approver is itself."""
    if not stored:
        return []
    source, colon, names = stored.partition(":")
    if colon and source in ("server", "local") and names:
        return [name for name in names.split(",") if name]
    return [stored]


def approvals(db: Session, scope: Scope, since: datetime, until: datetime) -> dict[str, Any]:
    where = [*_in_period(scope, since, until), AuditEntry.kind == "approval"]
    total_local = db.scalar(select(func.count()).select_from(AuditEntry).where(*where)) or 0
    local = list(db.scalars(select(AuditEntry).where(*where).order_by(
        AuditEntry.time, AuditEntry.id).limit(LIST_LIMIT)))
    server = _events(db, scope, since, until, SERVER_APPROVAL_KINDS)
    total_server = _count_events(db, scope, since, until, SERVER_APPROVAL_KINDS)
    asked = _requests(db, scope, {e.request_id for e in local if e.request_id} |
                      {str(ev.detail.get("request_id")) for ev in server})
    items: list[dict[str, Any]] = []
    for entry in local:
        request = asked.get(entry.request_id or "")
        items.append({"source": "runtime", "time": utc(entry.time).isoformat(),
                      "runtime_id": entry.runtime_id, "request_id": entry.request_id,
                      "outcome": entry.decision, "approvers": approvers_of(entry.approver),
                      "reason": entry.entry.get("reason"),
                      "tool": request.tool if request else None,
                      "summary": request.summary if request else None})
    for ev in server[:LIST_LIMIT]:
        request = asked.get(str(ev.detail.get("request_id")))
        items.append({"source": "server", "time": utc(ev.created).isoformat(),
                      "runtime_id": request.runtime_id if request else None,
                      "request_id": ev.detail.get("request_id"),
                      "outcome": ev.detail.get("state") or ev.kind.rpartition(".")[2],
                      "approvers": list(ev.detail.get("approvers") or []),
                      "delegated": list(ev.detail.get("delegated") or []),
                      "reason": ev.detail.get("reason"),
                      "tool": request.tool if request else None,
                      "summary": request.summary if request else None})
    items.sort(key=lambda item: item["time"])
    return {"total": total_local + total_server, "truncated": total_local > LIST_LIMIT or
            total_server > LIST_LIMIT, "items": items}


def denied(db: Session, scope: Scope, since: datetime, until: datetime) -> dict[str, Any]:
    where = [*_in_period(scope, since, until), AuditEntry.kind == "decision",
             AuditEntry.decision == "deny"]
    total = db.scalar(select(func.count()).select_from(AuditEntry).where(*where)) or 0
    rule = _unindexed(AuditEntry.rule)
    by_rule = db.execute(select(rule, func.count()).where(*where).group_by(rule).order_by(
        func.count().desc(), rule)).all()
    rows = db.execute(select(*LISTED).where(*where).order_by(
        AuditEntry.time, AuditEntry.id).limit(LIST_LIMIT)).all()
    return {"total": total, "truncated": total > LIST_LIMIT,
            "by_rule": [{"rule": rule, "count": count} for rule, count in by_rule],
            "items": [listed(row) for row in rows]}


def decisions(db: Session, scope: Scope, since: datetime, until: datetime) -> dict[str, int]:
    decision = _unindexed(AuditEntry.decision)
    rows = db.execute(select(decision, func.count()).where(
        *_in_period(scope, since, until), AuditEntry.kind == "decision").group_by(
        decision)).all()
    return {str(decision): count for decision, count in rows}


def chains(db: Session, scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Per runtime: the server's verified chain state, and whether the period's entries are
    complete (no sequence number missing between the first and last one stored)."""
    where = [Runtime.org_id == scope.org_id]
    if scope.team_id is not None:
        where.append(Runtime.team_id == scope.team_id)
    runtimes = list(db.scalars(select(Runtime).where(*where).order_by(Runtime.runtime_id)))
    runtime_id = _unindexed(AuditEntry.runtime_id).label("runtime_id")
    stats = {row.runtime_id: row for row in db.execute(
        select(runtime_id, func.count().label("entries"),
               func.min(AuditEntry.seq).label("first"), func.max(AuditEntry.seq).label("last"))
        .where(*_in_period(scope, since, until)).group_by(runtime_id))}
    states = {c.runtime_id: c for c in db.scalars(select(AuditChain).where(
        AuditChain.org_id == scope.org_id,
        AuditChain.runtime_id.in_([r.runtime_id for r in runtimes])))}
    out = []
    for runtime in runtimes:
        chain, period = states.get(runtime.runtime_id), stats.get(runtime.runtime_id)
        missing = (period.last - period.first + 1 - period.entries) if period else 0
        status = chain.status if chain else "no entries"
        out.append({
            "runtime_id": runtime.runtime_id, "labels": runtime.labels, "status": status,
            "problem": chain.problem if chain else None,
            "problem_seq": chain.problem_seq if chain else None,
            "verified_through_seq": chain.last_seq if chain else 0,
            "checkpoint_seq": chain.checkpoint_seq if chain else None,
            "period": {"entries": period.entries if period else 0,
                       "first_seq": period.first if period else None,
                       "last_seq": period.last if period else None, "missing": missing},
            "intact": status in ("ok", "no entries") and missing == 0,
        })
    return out


def report(db: Session, scope: Scope, since: datetime, until: datetime) -> dict[str, Any]:
    since, until = utc(since), utc(until)
    policy = _events(db, scope, since, until, POLICY_KINDS)
    chain_list = chains(db, scope, since, until)
    return {
        "scope": {"org_id": scope.org_id, "team_id": scope.team_id},
        "period": {"since": since.isoformat(), "until": until.isoformat()},
        "generated": datetime.now(UTC).isoformat(),
        "decisions": decisions(db, scope, since, until),
        "approvals": approvals(db, scope, since, until),
        "denied": denied(db, scope, since, until),
        "policy_changes": {"truncated": len(policy) > LIST_LIMIT,
                           "items": [_event(ev) for ev in policy[:LIST_LIMIT]]},
        "chains": chain_list,
        "all_chains_intact": all(c["intact"] for c in chain_list),
    }
