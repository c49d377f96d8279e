"""The governance API: a team's usage by agent x tool x day, and its friction (ask rate,
most-asked rules and programs, waits, always-approved actions). Read by owners, admins,
policy authors (who act on them) and auditors, as the audit figures they come from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

import runestone_server.govern.rollup  # noqa: F401 - registers the worker task
from runestone_server.auth import DB, Id, Who, team_for
from runestone_server.govern.friction import friction
from runestone_server.govern.usage import MAX_DAYS, usage

router = APIRouter(prefix="/api/v1", tags=["govern"])
GOVERN_READ = ("owner", "admin", "policy_author", "auditor")
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description="UTC days ending today")]


@router.get("/teams/{team_id}/usage")
def team_usage(team_id: Id, who: Who, db: DB, days: Days = 14) -> dict[str, Any]:
    """Decisions, asks, human approvals, denies and limit hits by agent x tool x day."""
    team = team_for(db, who, team_id, GOVERN_READ)
    return usage(db, who.org_id, team.id, datetime.now(UTC).date(), days)


@router.get("/teams/{team_id}/friction")
def team_friction(team_id: Id, who: Who, db: DB, days: Days = 30) -> dict[str, Any]:
    """Where the team is asked, how long asks wait, and what is always approved."""
    team = team_for(db, who, team_id, GOVERN_READ)
    return friction(db, who.org_id, team.id, datetime.now(UTC).date(), days)
