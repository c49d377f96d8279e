"""Friction: where a team's people are asked, how long an ask waits for them, and which
asks they always approve (the evidence proposals are made from).

The ask rate and the most-asked rules and programs come from the roll-ups; the waits and
the always-approved actions from the approval requests the control plane routed (asks of
enrolled runtimes), grouped by call (tool and input): one exact call asked again and again,
in any session, on any runtime.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone_server.govern.usage import most_asked, usage
from runestone_server.models import aware

MAX_REQUESTS = 20_000  # the newest approval requests read for waits and groups


def _requests(db: Session, org_id: int, team_id: int, since: datetime) -> list[Any]:
    from runestone_server.approvals.models import ApprovalRequest

    return list(db.scalars(select(ApprovalRequest).where(
        ApprovalRequest.org_id == org_id, ApprovalRequest.team_id == team_id,
        ApprovalRequest.created >= since).order_by(ApprovalRequest.id.desc())
        .limit(MAX_REQUESTS)))


def _votes(db: Session, request_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    from runestone_server.approvals.models import ApprovalVote

    found: dict[int, list[tuple[int, str]]] = {}
    for start in range(0, len(request_ids), 500):
        for approval_id, user_id, vote in db.execute(select(
                ApprovalVote.approval_id, ApprovalVote.user_id, ApprovalVote.vote).where(
                ApprovalVote.approval_id.in_(request_ids[start:start + 500]))):
            found.setdefault(approval_id, []).append((user_id, vote))
    return found


def waits(requests: list[Any]) -> dict[str, Any]:
    """How long each decided ask waited for a human (seconds), newest first, and summary
    figures; an ask still pending counts as waiting until now."""
    now = datetime.now(UTC)
    items = []
    for r in requests:
        if r.state not in ("approved", "denied", "pending"):
            continue
        created = aware(r.created)
        assert created is not None
        end = aware(r.decided) if r.decided is not None else now
        items.append({"request_id": r.request_id, "summary": r.summary[:200], "tool": r.tool,
                      "state": r.state, "seconds": max(0, round((end - created).total_seconds()))})
    decided = sorted(i["seconds"] for i in items if i["state"] != "pending")
    return {"decided": len(decided), "pending": len(items) - len(decided),
            "median_seconds": median(decided) if decided else None,
            "p90_seconds": decided[int(0.9 * (len(decided) - 1))] if decided else None,
            "max_seconds": decided[-1] if decided else None, "recent": items[:50]}


def same_call(request: Any) -> str:
    """What makes two asks the same call to a person: the tool and its input. The action
    hash also covers the session, agent and user, so it never recurs across sessions or
    runtimes; an ask sent without its input falls back to its summary."""
    from runestone.actions.canonical import canonical_hash

    if request.input:
        try:
            return canonical_hash({"tool": request.tool, "input": request.input})
        except (TypeError, ValueError):
            pass
    return canonical_hash({"tool": request.tool, "summary": request.summary})


def always_approved(requests: list[Any], votes: dict[int, list[tuple[int, str]]]
                    ) -> list[dict[str, Any]]:
    """Calls (tool and input) asked more than once and approved every time they were
    decided: how many approvals, by how many people, across how many runtimes."""
    groups: dict[str, list[Any]] = {}
    for r in requests:
        if r.state in ("approved", "denied"):
            groups.setdefault(same_call(r), []).append(r)
    out = []
    for call, members in groups.items():
        if len(members) < 2 or any(m.state != "approved" for m in members):
            continue
        people = {u for m in members for u, v in votes.get(m.id, []) if v == "approve"}
        approvals = sum(1 for m in members for _u, v in votes.get(m.id, []) if v == "approve")
        out.append({"call": call, "summary": members[0].summary[:200],
                    "tool": members[0].tool, "rule": members[0].rule, "asks": len(members),
                    "approvals": approvals, "people": len(people),
                    "runtimes": len({m.runtime_pk for m in members})})
    out.sort(key=lambda g: (-g["asks"], -g["people"], g["summary"]))
    return out[:50]


def friction(db: Session, org_id: int, team_id: int, today: date, days: int
             ) -> dict[str, Any]:
    figures = usage(db, org_id, team_id, today, days)
    first = today - timedelta(days=days - 1)
    rate = [{"day": d["day"], "decisions": d["decisions"], "asks": d["asks"],
             "rate": round(d["asks"] / d["decisions"], 4) if d["decisions"] else 0.0}
            for d in figures["per_day"]]
    totals = figures["totals"]
    try:
        requests = _requests(db, org_id, team_id,
                             datetime.combine(first, datetime.min.time(), UTC))
    except ImportError:  # no approvals domain
        requests = []
    votes = _votes(db, [r.id for r in requests])
    return {"team_id": team_id, "since": figures["since"], "until": figures["until"],
            "days": days, "decisions": totals["decisions"], "asks": totals["asks"],
            "ask_rate": round(totals["asks"] / totals["decisions"], 4)
            if totals["decisions"] else 0.0,
            "ask_rate_per_day": rate,
            "most_asked_rules": most_asked(db, org_id, team_id, first, "rule"),
            "most_asked_programs": most_asked(db, org_id, team_id, first, "program"),
            "waits": waits(requests), "always_approved": always_approved(requests, votes)}
