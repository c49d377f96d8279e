"""Telling a level's approvers that a request waits for them, through the outbox.

The deliveries are written in the caller's transaction, so the approvers are told exactly
when the routing or escalation that concerns them is committed. A routed level's channels
are its group's; an ask no route matched goes to the team's fallback channels. The message
carries the approval link on this server; the notify domain formats it for each kind of
channel.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy.orm import Session

from runestone_server.approvals.models import ApprovalRequest, ApproverGroup
from runestone_server.approvals.purpose import LABEL as PURPOSE_LABEL
from runestone_server.approvals.purpose import MAX_SHOWN as MAX_PURPOSE
from runestone_server.approvals.purpose import stated_purpose
from runestone_server.approvals.routing import fallback_channel_ids
from runestone_server.events import record
from runestone_server.notify import UnknownChannel, enqueue

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8800"


def public_url() -> str:
    return os.environ.get("RUNESTONE_SERVER_PUBLIC_URL", DEFAULT_PUBLIC_URL).rstrip("/")


def approval_link(approval: ApprovalRequest) -> str:
    return f"{public_url()}/approvals/{approval.id}"


def notify_level(db: Session, approval: ApprovalRequest, level: int,
                 group: ApproverGroup | None, *, escalated: bool = False) -> None:
    """Enqueue one message per channel of the level's group (for an ask no route matched,
    per channel of the team's fallback setting); record what was sent."""
    link = approval_link(approval)
    who = approval.requester.get("user") or "?"
    subject = (f"{'Escalated: ' if escalated else ''}approval needed: {approval.tool} "
               f"({approval.severity}) from {who}")
    purpose = stated_purpose(approval.input)[:MAX_PURPOSE]
    said = f"\n{PURPOSE_LABEL}: \"{purpose}\"" if purpose else ""
    text = (f"{approval.summary}{said}\n\nRule: {approval.rule or '(none)'}  Severity: "
            f"{approval.severity}\nWhy it asked: {approval.reason}\nRequester: {who} "
            f"(agent {approval.requester.get('agent') or '?'}, host "
            f"{approval.requester.get('host') or '?'})\nLevel {level + 1}"
            f"{' (escalated)' if escalated else ''}\n\nDecide: {link}")
    data: dict[str, Any] = {"approval_id": approval.id, "request_id": approval.request_id,
                            "tool": approval.tool, "severity": approval.severity,
                            "rule": approval.rule, "level": level,
                            "agent_stated_purpose": purpose}
    sent: list[int] = []
    errors: list[str] = []
    if approval.route_id is None:
        channels = fallback_channel_ids(db, approval.org_id, approval.team_id)
    else:
        channels = list(group.channel_ids or []) if group is not None else []
    for channel_id in channels:
        try:
            enqueue(db, org_id=approval.org_id, team_id=approval.team_id,
                    channel_id=int(channel_id), subject=subject,
                    text=text, link=link, data=data,
                    dedup_key=f"approval:{approval.id}:level:{level}")
            sent.append(int(channel_id))
        except UnknownChannel as exc:  # a deleted channel must not stop routing
            errors.append(str(exc))
    record(db, approval.org_id, approval.team_id, "server", "approval.notified", {
        "request_id": approval.request_id, "approval_id": approval.id, "level": level,
        "group": group.name if group is not None else "team approvers",
        "channels": sent, "errors": errors, "link": link})
