"""Simulation on the server: replay a team's ingested audit history against a candidate
policy version before publishing it, and show which past decisions would change.

The engine is the runtime's own (`runestone.policy.simulate`): the server compiles the
candidate with the runtime's loader and decides each recorded request again exactly as a
runtime would, so what the simulation predicts is what the runtimes will do.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import func, select

from runestone_server.api.policies import _version
from runestone_server.audit.models import AuditEntry
from runestone_server.auth import AUTHOR_ROLES, DB, MAX_ID, Id, Who, team_for

router = APIRouter(prefix="/api/v1")


class SimulationRequest(BaseModel):
    """A stored version by number, or a candidate's text not stored yet; one of the two."""

    number: int | None = Field(default=None, ge=1, le=MAX_ID)
    text: str | None = Field(default=None, max_length=1_000_000)
    days: int = Field(default=30, ge=1, le=366)
    limit: int = Field(default=100_000, ge=1, le=1_000_000,
                       description="the most recorded decisions to replay (newest first)")
    examples: int = Field(default=5, ge=0, le=50)

    @model_validator(mode="after")
    def _one_candidate(self) -> SimulationRequest:
        if (self.number is None) == (self.text is None):
            raise ValueError("give either a version number or a policy text")
        return self


class SimulationOut(BaseModel):
    candidate_hash: str
    since: datetime
    replayed: int
    unchanged: int
    changed: dict[str, int]
    examples: dict[str, list[dict[str, Any]]]


@router.post("/teams/{team_id}/simulations", response_model=SimulationOut)
def simulate_candidate(team_id: Id, body: SimulationRequest, who: Who, db: DB) -> SimulationOut:
    from runestone.policy import PolicyError
    from runestone.policy.loader import compile_policy_text
    from runestone.policy.simulate import simulate

    team = team_for(db, who, team_id, AUTHOR_ROLES)
    text = body.text if body.text is not None else _version(db, team.id, body.number or 0).text
    try:
        candidate = compile_policy_text(text, source="candidate")
    except PolicyError as exc:
        raise HTTPException(400, f"the candidate does not load: {exc}") from exc
    since = datetime.now(UTC) - timedelta(days=body.days)
    result = simulate(_history(db, team.id, since, body.limit), candidate,
                      examples=body.examples)
    return SimulationOut(candidate_hash=candidate.hash, since=since, **result.to_json())


def _history(db: DB, team_id: int, since: datetime, limit: int) -> Iterator[dict[str, Any]]:
    """The team's recorded requests and decisions since `since`, oldest first, at most
    `limit` of each kind (the newest ones), streamed rather than loaded at once."""
    newest = select(AuditEntry.time).where(
        AuditEntry.team_id == team_id, AuditEntry.kind == "decision",
        AuditEntry.time >= since).order_by(AuditEntry.time.desc()).limit(limit).subquery()
    start = db.scalar(select(func.min(newest.c.time)))
    if start is None:
        return
    # A request is written just before its decision; a minute's margin finds it.
    rows = db.execute(select(AuditEntry.entry).where(
        AuditEntry.team_id == team_id, AuditEntry.kind.in_(("request", "decision")),
        AuditEntry.time >= start - timedelta(minutes=1)).order_by(AuditEntry.time,
                                                                 AuditEntry.id)
        .execution_options(yield_per=2000))
    for (entry,) in rows:
        yield entry
