"""Alert rules of a team (create, list, change, delete) and the alerts they fired.

Owners and admins manage rules (they decide who gets woken up); owners, admins and
auditors read rules and alerts, like the team's server events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

import runestone_server.alerts.evaluate as evaluation  # registers the worker task
from runestone_server.alerts.conditions import Conditions
from runestone_server.alerts.models import Alert, AlertRule
from runestone_server.auth import AUDIT_ROLES, DB, MANAGE_ROLES, MAX_ID, Id, Who, team_for
from runestone_server.events import record
from runestone_server.models import aware, utcnow
from runestone_server.notify.models import Channel
from runestone_server.notify.references import holds_channels, without

router = APIRouter(prefix="/api/v1", tags=["alerts"])
Event = Literal["deny", "approval_expired", "chain_problem", "policy_published",
                "runtime_silent", "drift", "deny_spike", "limit_hits"]
ChannelId = Annotated[int, Field(ge=1, le=MAX_ID)]


class RuleIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    event: Event
    conditions: Conditions = Field(default_factory=Conditions)
    channel_ids: list[ChannelId] = Field(default_factory=list, max_length=20)
    dedup_minutes: int = Field(default=60, ge=1, le=525_600)
    enabled: bool = True


class RuleOut(RuleIn):
    id: int
    team_id: int
    created: datetime


def _out(rule: AlertRule) -> RuleOut:
    return RuleOut(id=rule.id, team_id=rule.team_id, name=rule.name, event=rule.event,
                   conditions=Conditions.model_validate(rule.conditions or {}),
                   channel_ids=list(rule.channel_ids), dedup_minutes=rule.dedup_minutes,
                   enabled=rule.enabled, created=aware(rule.created))


def _check_channels(db: DB, org_id: int, team_id: int, ids: list[int]) -> list[int]:
    """Every channel must be this team's: a rule never notifies another team's or
    tenant's channel."""
    ids = list(dict.fromkeys(ids))
    found = set(db.scalars(select(Channel.id).where(Channel.org_id == org_id,
                                                    Channel.team_id == team_id,
                                                    Channel.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise HTTPException(400, f"no such channel in this team: {missing}")
    return ids


def _rule(db: DB, org_id: int, team_id: int, rule_id: int) -> AlertRule:
    rule = db.scalar(select(AlertRule).where(AlertRule.id == rule_id,
                                             AlertRule.org_id == org_id,
                                             AlertRule.team_id == team_id))
    if rule is None:
        raise HTTPException(404, "no such alert rule")
    return rule


@router.post("/teams/{team_id}/alert-rules", response_model=RuleOut, status_code=201)
def create_rule(team_id: Id, body: RuleIn, who: Who, db: DB) -> RuleOut:
    team = team_for(db, who, team_id, MANAGE_ROLES)
    rule = AlertRule(org_id=who.org_id, team_id=team.id, name=body.name, event=body.event,
                     conditions=body.conditions.model_dump(),
                     channel_ids=_check_channels(db, who.org_id, team.id, body.channel_ids),
                     dedup_minutes=body.dedup_minutes, enabled=body.enabled,
                     created_by=who.user.id)
    db.add(rule)
    evaluation.ensure_cursor(db, who.org_id, utcnow())
    db.flush()
    record(db, who.org_id, team.id, who.name, "alerts.rule_created",
           {"rule": rule.id, "name": rule.name, "event": rule.event})
    db.commit()
    return _out(rule)


@router.get("/teams/{team_id}/alert-rules", response_model=list[RuleOut])
def list_rules(team_id: Id, who: Who, db: DB) -> list[RuleOut]:
    team = team_for(db, who, team_id, AUDIT_ROLES)
    return [_out(r) for r in db.scalars(select(AlertRule).where(
        AlertRule.org_id == who.org_id, AlertRule.team_id == team.id).order_by(AlertRule.id))]


@router.put("/teams/{team_id}/alert-rules/{rule_id}", response_model=RuleOut)
def update_rule(team_id: Id, rule_id: Id, body: RuleIn, who: Who, db: DB) -> RuleOut:
    team = team_for(db, who, team_id, MANAGE_ROLES)
    rule = _rule(db, who.org_id, team.id, rule_id)
    rule.name, rule.event, rule.conditions = body.name, body.event, body.conditions.model_dump()
    rule.channel_ids = _check_channels(db, who.org_id, team.id, body.channel_ids)
    rule.dedup_minutes, rule.enabled = body.dedup_minutes, body.enabled
    record(db, who.org_id, team.id, who.name, "alerts.rule_changed",
           {"rule": rule.id, "name": rule.name, "event": rule.event,
            "enabled": rule.enabled})
    db.commit()
    return _out(rule)


@router.delete("/teams/{team_id}/alert-rules/{rule_id}", status_code=204)
def delete_rule(team_id: Id, rule_id: Id, who: Who, db: DB) -> Response:
    """The rule goes; the alerts it fired stay in the history (with its name)."""
    team = team_for(db, who, team_id, MANAGE_ROLES)
    rule = _rule(db, who.org_id, team.id, rule_id)
    db.execute(update(Alert).where(Alert.rule_id == rule.id,
                                   Alert.org_id == who.org_id).values(rule_id=None))
    db.delete(rule)
    record(db, who.org_id, team.id, who.name, "alerts.rule_deleted",
           {"rule": rule_id, "name": rule.name})
    db.commit()
    return Response(status_code=204)


@router.get("/teams/{team_id}/alerts")
def list_alerts(team_id: Id, who: Who, db: DB,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                event: Event | None = None) -> list[dict[str, Any]]:
    """The team's alerts, newest first; `before` (an alert id) pages further back."""
    team = team_for(db, who, team_id, AUDIT_ROLES)
    query = select(Alert).where(Alert.org_id == who.org_id, Alert.team_id == team.id)
    if before is not None:
        query = query.where(Alert.id < before)
    if event is not None:
        query = query.where(Alert.event == event)
    return [{"id": a.id, "rule_id": a.rule_id, "rule": a.rule_name, "event": a.event,
             "subject": a.subject, "dedup_key": a.dedup_key, "detail": a.detail,
             "fired": aware(a.fired).isoformat()}
            for a in db.scalars(query.order_by(Alert.id.desc()).limit(limit))]


@holds_channels("alerts")
def forget_channel_in_alert_rules(db: Session, org_id: int, team_id: int,
                                  channel_id: int) -> None:
    """A deleted channel leaves the team's alert rules (a rule left with none still fires
    and is listed; it tells nobody)."""
    for rule in db.scalars(select(AlertRule).where(AlertRule.org_id == org_id,
                                                   AlertRule.team_id == team_id)):
        if (kept := without(rule.channel_ids, channel_id)) is not None:
            rule.channel_ids = kept
