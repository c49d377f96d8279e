"""Which route an ask takes: the team's routes in priority order, the first that matches.

A route matches when every label it names has that value on the runtime, the tool matches
its glob, one of the rules that asked matches its rule glob, and the ask's severity is at
least its minimum. No matching route sends the ask to the team's fallback: its owners,
admins and approvers, one level, quorum one (so an unconfigured team still gets asks
decided, by the people who already hold the approver role).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase

from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone_server.approvals.models import (
    SEVERITIES,
    ApprovalLevel,
    ApprovalRoute,
    ApprovalTeamSettings,
)

FALLBACK_TIMEOUT_SECONDS = 3600


def fallback_timeout() -> int:
    """How long the fallback level waits before the ask expires (env, default one hour)."""
    try:
        return max(1, int(os.environ.get("RUNESTONE_SERVER_APPROVAL_TIMEOUT",
                                         FALLBACK_TIMEOUT_SECONDS)))
    except ValueError:
        return FALLBACK_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class Ask:
    """What routing looks at."""

    labels: dict[str, str]
    tool: str
    rules: tuple[str, ...]
    severity: str


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES) - 1


def matches(route: ApprovalRoute, ask: Ask) -> bool:
    if any(ask.labels.get(key) != value for key, value in (route.match_labels or {}).items()):
        return False
    if not fnmatchcase(ask.tool, route.tool_glob or "*"):
        return False
    rule_glob = route.rule_glob or "*"
    if rule_glob != "*" and not any(fnmatchcase(rule, rule_glob) for rule in ask.rules):
        return False
    # An unknown severity counts as the highest: it can only route to stricter people.
    return severity_rank(ask.severity) >= severity_rank(route.min_severity or "low")


def pick_route(db: Session, org_id: int, team_id: int, ask: Ask) -> ApprovalRoute | None:
    """The first matching route of the team (lowest priority number, then oldest)."""
    routes = db.scalars(select(ApprovalRoute).where(
        ApprovalRoute.org_id == org_id, ApprovalRoute.team_id == team_id,
        ApprovalRoute.archived.is_(None)).order_by(
        ApprovalRoute.priority, ApprovalRoute.id))
    for route in routes:
        if matches(route, ask):
            return route
    return None


def levels(db: Session, route_id: int | None) -> list[ApprovalLevel]:
    """The route's levels in order; empty for the fallback."""
    if route_id is None:
        return []
    return list(db.scalars(select(ApprovalLevel).where(ApprovalLevel.route_id == route_id)
                           .order_by(ApprovalLevel.position)))


def fallback_channel_ids(db: Session, org_id: int, team_id: int) -> list[int]:
    """The notification channels told of the team's fallback asks; none until a manager
    sets some."""
    found = db.scalar(select(ApprovalTeamSettings.fallback_channel_ids).where(
        ApprovalTeamSettings.org_id == org_id, ApprovalTeamSettings.team_id == team_id))
    return [int(channel_id) for channel_id in found or []]
