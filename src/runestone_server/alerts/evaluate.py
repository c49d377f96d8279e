"""Alert evaluation, one organisation at a time, as a worker task.

A replica first claims the organisation's cursor (conditional UPDATE on its generation);
whoever loses the claim does nothing this tick. In the same transaction it reads what is
new since the cursor, runs every enabled rule, drops candidates already fired within the
rule's window (same rule, same dedup key), records each alert and enqueues its
notifications through the outbox. One commit: the cursor, the alerts and the deliveries
move together, so nothing fires twice and nothing is lost.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from runestone_server.alerts.conditions import CHECKERS, Candidate, Conditions
from runestone_server.alerts.models import Alert, AlertCursor, AlertRule
from runestone_server.alerts.sources import high_water, read
from runestone_server.db import Database
from runestone_server.models import utcnow
from runestone_server.notify import UnknownChannel, enqueue
from runestone_server.worker import task

log = logging.getLogger("runestone_server.alerts")


def interval() -> float:
    """Seconds between evaluations of one organisation (state checks cost queries)."""
    return float(os.environ.get("RUNESTONE_ALERTS_INTERVAL", "5"))


def public_url() -> str:
    return os.environ.get("RUNESTONE_SERVER_PUBLIC_URL", "http://127.0.0.1:8800").rstrip("/")


def ensure_cursor(db: Session, org_id: int, now: datetime) -> None:
    """Start the organisation's cursor at what exists now (once; a no-op if it exists), so
    a first rule is about what happens from now on, not the whole history."""
    last_event, last_audit = high_water(db, now)
    values = {"org_id": org_id, "last_event_id": last_event, "last_audit_id": last_audit,
              "generation": 0, "evaluated": now}
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    db.execute(dialect.insert(AlertCursor).values(**values).on_conflict_do_nothing(
        index_elements=["org_id"]))


def fire(db: Session, rule: AlertRule, candidate: Candidate, now: datetime) -> Alert | None:
    """Record the alert and enqueue it to the rule's channels, unless the same rule fired
    the same key within its de-duplication window."""
    window = now - timedelta(minutes=rule.dedup_minutes)
    if db.scalar(select(Alert.id).where(Alert.rule_id == rule.id,
                                        Alert.dedup_key == candidate.key[:300],
                                        Alert.fired > window).limit(1)) is not None:
        return None
    subject = " ".join(candidate.subject.split())[:500]  # runtime text: one line
    alert = Alert(org_id=rule.org_id, team_id=rule.team_id, rule_id=rule.id,
                  rule_name=rule.name, event=rule.event, dedup_key=candidate.key[:300],
                  subject=subject, detail=dict(candidate.detail), fired=now)
    db.add(alert)
    db.flush()
    link = public_url() + (candidate.path or f"/teams/{rule.team_id}")
    undelivered: list[str] = []
    for channel_id in rule.channel_ids:
        try:
            enqueue(db, org_id=rule.org_id, team_id=rule.team_id, channel_id=int(channel_id),
                    subject=f"[Runestone alert] {subject}", text=candidate.text,
                    link=link, dedup_key=f"alert:{alert.id}",
                    data={"alert_id": alert.id, "rule": rule.name, "event": rule.event,
                          "team_id": rule.team_id, **candidate.detail})
        except UnknownChannel as exc:  # a channel deleted since: fire anyway, say so
            undelivered.append(str(exc))
    if undelivered:
        alert.detail = {**alert.detail, "undelivered": undelivered}
    return alert


def evaluate_org(db: Database, org_id: int, now: datetime | None = None, *,
                 force: bool = False) -> list[Alert] | None:
    """Evaluate one organisation's rules; the alerts fired, or None when another replica
    holds this turn (or it is not due yet and not `force`)."""
    now = now or utcnow()
    with db.sessions() as session:
        cursor = session.get(AlertCursor, org_id)
        if cursor is None:
            ensure_cursor(session, org_id, now)
            session.commit()
            cursor = session.get(AlertCursor, org_id)
            assert cursor is not None
        evaluated = cursor.evaluated if cursor.evaluated.tzinfo else \
            cursor.evaluated.replace(tzinfo=now.tzinfo)
        if not force and now - evaluated < timedelta(seconds=interval()):
            return None
        rules = list(session.scalars(select(AlertRule).where(
            AlertRule.org_id == org_id, AlertRule.enabled.is_(True)).order_by(AlertRule.id)))
        batch = read(session, org_id, cursor.last_event_id, cursor.last_audit_id, now)
        claimed = session.execute(update(AlertCursor).where(
            AlertCursor.org_id == org_id, AlertCursor.generation == cursor.generation,
        ).values(last_event_id=batch.last_event_id, last_audit_id=batch.last_audit_id,
                 generation=cursor.generation + 1, evaluated=now))
        if claimed.rowcount != 1:
            session.rollback()
            return None
        fired: list[Alert] = []
        for rule in rules:
            conditions = Conditions.model_validate(rule.conditions or {})
            for candidate in CHECKERS[rule.event](session, rule, conditions, batch, now):
                alert = fire(session, rule, candidate, now)
                if alert is not None:
                    fired.append(alert)
        session.commit()
        for alert in fired:
            log.info("alert %s fired: %s", alert.id, alert.subject)
        return fired


def organisations(db: Database) -> list[int]:
    with db.sessions() as session:
        return list(session.scalars(select(AlertRule.org_id).where(
            AlertRule.enabled.is_(True)).distinct()))


@task("alerts.evaluate")
def evaluate_task(db: Database) -> None:
    for org_id in organisations(db):
        try:
            evaluate_org(db, org_id)
        except Exception:  # one organisation's failure must not starve the others
            log.exception("alert evaluation failed for organisation %s", org_id)
