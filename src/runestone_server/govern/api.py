"""The governance API: a team's usage by agent x tool x day, its friction (ask rate,
most-asked rules and programs, waits, always-approved actions) and the rules proposed from
its approvals. Read by owners, admins, policy authors (who act on them) and auditors, as
the audit figures they come from; thresholds and drafts are for policy authors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

import runestone_server.govern.rollup  # noqa: F401 - registers the worker task
from runestone_server.api.policies import NewVersion, create_version
from runestone_server.auth import AUTHOR_ROLES, DB, Id, Who, team_for
from runestone_server.events import record
from runestone_server.govern import proposals
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


class Thresholds(BaseModel):
    """How much evidence a proposal needs: approvals of the asks one rule covers, and
    the different people who gave them."""

    min_approvals: int = Field(ge=1, le=10_000)
    min_people: int = Field(ge=1, le=1_000)


class DraftIn(BaseModel):
    rule_hash: str = Field(pattern=r"^[0-9a-f]{64}$",
                           description="the proposal's `rule_hash` from the listing")
    days: int = Field(default=30, ge=1, le=MAX_DAYS)


@router.get("/teams/{team_id}/proposals")
def list_proposals(team_id: Id, who: Who, db: DB, days: Days = 30) -> dict[str, Any]:
    """Rules proposed from the team's approved asks, each with its replay over the team's
    audit history (asks saved, actions newly allowed with human-denied first, conflicts)."""
    team = team_for(db, who, team_id, GOVERN_READ)
    return proposals.propose(db, team, days)


@router.get("/teams/{team_id}/proposal-settings", response_model=Thresholds)
def get_thresholds(team_id: Id, who: Who, db: DB) -> dict[str, int]:
    team = team_for(db, who, team_id, GOVERN_READ)
    return proposals.thresholds(db, team)


@router.put("/teams/{team_id}/proposal-settings", response_model=Thresholds)
def put_thresholds(team_id: Id, body: Thresholds, who: Who, db: DB) -> dict[str, int]:
    team = team_for(db, who, team_id, AUTHOR_ROLES)
    proposals.save_thresholds(db, team, body.min_approvals, body.min_people)
    record(db, who.org_id, team.id, who.name, "proposal.thresholds", body.model_dump())
    db.commit()
    return proposals.thresholds(db, team)


@router.post("/teams/{team_id}/proposals/drafts", status_code=201)
def make_draft(team_id: Id, body: DraftIn, who: Who, db: DB) -> dict[str, Any]:
    """One step from a proposal to a draft version: the base policy with the rule added,
    compiled with its tests. Publishing it stays a separate act."""
    team = team_for(db, who, team_id, AUTHOR_ROLES)
    found = proposals.propose(db, team, body.days)
    proposal = proposals.find(found, body.rule_hash)
    if proposal["refused"]:
        first = proposal["conflicts"][0]
        raise HTTPException(409, f"the replay refuses this proposal: {first['why']} "
                                 f"({first['summary']})")
    base = proposals.base_version(db, team)
    text = proposals.draft_text(base, proposal["toml"])
    message = (f"Proposal {proposal['id']}: saves {proposal['saved']} ask(s), learned from "
               f"{proposal['approvals']} approval(s) by {proposal['people']} people; "
               f"based on v{base.number}")
    version = create_version(team.id, NewVersion(text=text, message=message), who, db)
    record(db, who.org_id, team.id, who.name, "proposal.drafted",
           {"rule_hash": body.rule_hash, "rule": proposal["id"], "number": version.number,
            "base": base.number, "saved": proposal["saved"]})
    db.commit()
    return {"number": version.number, "hash": version.hash, "base": base.number,
            "rule": proposal["id"], "message": message}
