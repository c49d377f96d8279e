"""Configuring the team's fallback: which notification channels are told of the asks that
match no route.

Those asks go to the team's owners, admins and approvers (see `routing`). Channels hang off
approver groups, and the fallback has no group, so without this setting an unrouted ask
reached nobody until someone happened to open the inbox. Managers (owner, admin) set it, as
they set groups: a channel decides where the team's asks go. Like alert rules, only the
team's own channels can be chosen, so a manager can never send one team's asks to a channel
another team keeps (or cannot see).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runestone_server.approvals.models import ApprovalTeamSettings
from runestone_server.approvals.routing import fallback_channel_ids
from runestone_server.approvals.service import Refused, now
from runestone_server.auth import MANAGE_ROLES, Principal, team_for
from runestone_server.events import record

if TYPE_CHECKING:
    from runestone_server.notify.models import Channel


def team_channels(db: Session, org_id: int, team_id: int) -> list[Channel]:
    """The channels a manager may choose from: the team's own, oldest first."""
    from runestone_server.notify.models import Channel

    return list(db.scalars(select(Channel).where(Channel.org_id == org_id,
                                                 Channel.team_id == team_id)
                           .order_by(Channel.id)))


def settings_out(db: Session, org_id: int, team_id: int) -> dict[str, Any]:
    return {"team_id": team_id,
            "fallback_channel_ids": fallback_channel_ids(db, org_id, team_id)}


def get_settings(db: Session, who: Principal, team_id: int) -> dict[str, Any]:
    """Managers only: the channels name where the team's asks go."""
    team = team_for(db, who, team_id, MANAGE_ROLES)
    return settings_out(db, who.org_id, team.id)


def save_settings(db: Session, who: Principal, team_id: int,
                  channel_ids: list[int]) -> dict[str, Any]:
    """Replace the fallback's channels (an empty list stops these notifications)."""
    team = team_for(db, who, team_id, MANAGE_ROLES)
    org_id, team_pk = who.org_id, team.id
    chosen = list(dict.fromkeys(int(c) for c in channel_ids))
    known = {c.id for c in team_channels(db, org_id, team_pk)}
    missing = [c for c in chosen if c not in known]
    if missing:
        raise Refused(400, f"no such notification channels in this team: {missing}")
    _store(db, org_id, team_pk, chosen)
    record(db, org_id, team_pk, who.name, "approval.fallback-channels-saved",
           {"channel_ids": chosen})
    db.commit()
    return settings_out(db, org_id, team_pk)


def _store(db: Session, org_id: int, team_id: int, channel_ids: list[int]) -> None:
    """Insert or update the team's one row; two managers saving the first settings at once
    meet on the unique team id, and the later one updates the row the first made."""
    query = select(ApprovalTeamSettings).where(ApprovalTeamSettings.team_id == team_id,
                                               ApprovalTeamSettings.org_id == org_id)
    row = db.scalar(query)
    if row is None:
        db.add(ApprovalTeamSettings(org_id=org_id, team_id=team_id,
                                    fallback_channel_ids=channel_ids, updated=now()))
        try:
            db.flush()
            return
        except IntegrityError:
            db.rollback()
            row = db.scalar(query)
            if row is None:
                raise
    row.fallback_channel_ids = channel_ids
    row.updated = now()
