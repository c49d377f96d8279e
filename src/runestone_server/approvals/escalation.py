"""Escalation: a pending request past its level's deadline goes to the next level (whose
group is notified), and past the last level it expires, which is a deny.

Every replica runs this task each tick. A move is one conditional UPDATE that names the
state, level and deadline it read, so when two replicas see the same due request only one
UPDATE matches a row; the other moves on without notifying anyone twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from runestone_server.approvals import wakeups
from runestone_server.approvals.models import ApprovalRequest, ApproverGroup
from runestone_server.approvals.notifying import notify_level
from runestone_server.approvals.routing import levels
from runestone_server.approvals.service import now
from runestone_server.db import Database
from runestone_server.events import record
from runestone_server.worker import task

BATCH = 100


@task("approvals.escalate")
def escalate_due(database: Database) -> int:
    """Move every due request one step; returns how many this replica moved."""
    moment = now()
    with database.sessions() as db:
        due = db.execute(select(ApprovalRequest.id, ApprovalRequest.level,
                                ApprovalRequest.level_deadline).where(
            ApprovalRequest.state == "pending",
            ApprovalRequest.level_deadline <= moment).order_by(
            ApprovalRequest.level_deadline).limit(BATCH)).all()
    moved = 0
    for approval_id, level, deadline in due:
        with database.sessions() as db:
            moved += advance(db, approval_id, level, deadline, moment)
    return moved


def advance(db: Session, approval_id: int, level: int, deadline: datetime,
            moment: datetime) -> bool:
    approval = db.get(ApprovalRequest, approval_id)
    if approval is None:
        return False
    steps = levels(db, approval.route_id)
    claim = update(ApprovalRequest).where(
        ApprovalRequest.id == approval_id, ApprovalRequest.state == "pending",
        ApprovalRequest.level == level, ApprovalRequest.level_deadline == deadline)
    following = level + 1
    if following < len(steps):
        step = steps[following]
        new_deadline = moment + timedelta(seconds=step.timeout_seconds)
        result = db.execute(claim.values(level=following, level_deadline=new_deadline)
                            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            db.rollback()
            return False
        db.refresh(approval)
        group = db.get(ApproverGroup, step.group_id)
        record(db, approval.org_id, approval.team_id, "server", "approval.escalated", {
            "request_id": approval.request_id, "approval_id": approval.id,
            "from_level": level, "to_level": following,
            "group": group.name if group else None, "deadline": new_deadline.isoformat()})
        notify_level(db, approval, following, group, escalated=True)
        db.commit()
        return True
    why = (f"no decision within the timeout of level {level + 1}, the last one; expired "
           "(an expired request is a deny)")
    result = db.execute(claim.values(state="expired", decided=moment, decided_reason=why)
                        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.rollback()
        return False
    record(db, approval.org_id, approval.team_id, "server", "approval.expired", {
        "request_id": approval.request_id, "approval_id": approval.id, "level": level,
        "state": "expired", "reason": why, "tool": approval.tool,
        "severity": approval.severity, "rule": approval.rule})
    wakeups.announce(db, approval.id)
    db.commit()
    wakeups.wake(approval.id)
    return True
