"""Overview: decisions per day by outcome, the most denied rules, and pending approvals by
age, for the teams the viewer may see (audit figures only where they hold an audit role,
as in the API). Decision figures come from the worker's daily roll-up, so the page costs
the same on a million entries as on ten (they lag ingest by a tick or two)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runestone_server.auth import AUDIT_ROLES, DB
from runestone_server.models import Membership, Team
from runestone_server.web.charts import stacked
from runestone_server.web.models import DecisionDay
from runestone_server.web.render import PageRoute, Signed, Viewer, page

router = APIRouter(route_class=PageRoute)
DAYS = 14
OUTCOMES = ("allow", "sandbox", "ask", "deny")  # sandbox: allowed, but contained
AGES = (("under 5 min", 300), ("under 1 h", 3600), ("under 1 day", 86400),
        ("older", None))


def teams_with(db: Session, viewer: Viewer, roles: tuple[str, ...] | None) -> list[int]:
    """Ids of the viewer's teams (in which they hold one of `roles`, if given)."""
    if viewer.user.org_admin:
        return list(db.scalars(select(Team.id).where(Team.org_id == viewer.principal.org_id)))
    query = select(Membership.team_id).where(Membership.user_id == viewer.user.id,
                                             Membership.org_id == viewer.principal.org_id)
    if roles is not None:
        query = query.where(Membership.role.in_(roles))
    return list(db.scalars(query))


def decisions_per_day(db: Session, org_id: int, team_ids: list[int], today: date
                      ) -> list[tuple[str, dict[str, int]]]:
    """From the daily roll-up (rollup.py), not the entries: a few hundred rows at most."""
    first = today - timedelta(days=DAYS - 1)
    rows = db.execute(select(DecisionDay.day, DecisionDay.decision,
                             func.sum(DecisionDay.count)).where(
        DecisionDay.org_id == org_id, DecisionDay.team_id.in_(team_ids),
        DecisionDay.day >= first).group_by(DecisionDay.day, DecisionDay.decision))
    counts: dict[str, dict[str, int]] = {}
    for day, decision, count in rows:
        counts.setdefault(str(day)[:10], {})[decision] = int(count)
    return [((today - timedelta(days=offset)).isoformat(),
             counts.get((today - timedelta(days=offset)).isoformat(), {}))
            for offset in range(DAYS - 1, -1, -1)]


def top_denied(db: Session, org_id: int, team_ids: list[int], today: date
               ) -> list[tuple[str, int]]:
    total = func.sum(DecisionDay.count).label("n")
    rows = db.execute(select(DecisionDay.rule, total).where(
        DecisionDay.org_id == org_id, DecisionDay.team_id.in_(team_ids),
        DecisionDay.decision == "deny", DecisionDay.day >= today - timedelta(days=DAYS - 1))
        .group_by(DecisionDay.rule).order_by(total.desc()).limit(8))
    return [(rule or "(default)", int(n)) for rule, n in rows]


def pending_by_age(db: Session, org_id: int, team_ids: list[int]) -> list[tuple[str, int]]:
    try:
        from runestone_server.approvals.models import ApprovalRequest
    except ImportError:
        return []
    now = datetime.now(UTC)
    buckets = dict.fromkeys((label for label, _ in AGES), 0)
    created = db.scalars(select(ApprovalRequest.created).where(
        ApprovalRequest.org_id == org_id, ApprovalRequest.team_id.in_(team_ids),
        ApprovalRequest.state == "pending").limit(10_000))
    for moment in created:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        age = (now - moment).total_seconds()
        for label, limit in AGES:
            if limit is None or age < limit:
                buckets[label] += 1
                break
    return list(buckets.items())


@router.get("/")
def overview(request: Request, viewer: Signed, db: DB) -> Response:
    org = viewer.principal.org_id
    audit_teams = teams_with(db, viewer, AUDIT_ROLES)
    my_teams = teams_with(db, viewer, None)
    today = datetime.now(UTC).date()
    days = decisions_per_day(db, org, audit_teams, today) if audit_teams else []
    pending = pending_by_age(db, org, my_teams) if my_teams else []
    return page(request, "overview.html", viewer,
                decisions=stacked(days, OUTCOMES) if days else None,
                totals={o: sum(c.get(o, 0) for _, c in days) for o in OUTCOMES},
                denied=top_denied(db, org, audit_teams, today) if audit_teams else [],
                pending=stacked([(label, {"pending": n}) for label, n in pending],
                                ("pending",)) if pending else None,
                pending_rows=pending, can_audit=bool(audit_teams), teams=len(my_teams))
