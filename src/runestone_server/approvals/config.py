"""Configuring who approves: approver groups, routes with escalation levels, delegations.

Team managers (owner, admin) set groups and routes; anyone sets their own delegations.
Every referenced user, group and channel must belong to the caller's organisation (and
groups to the same team), so configuration can never point across tenants.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runestone_server.approvals.models import (
    SEVERITIES,
    ApprovalLevel,
    ApprovalRoute,
    ApprovalTeamSettings,
    ApproverGroup,
    ApproverGroupMember,
    Delegation,
)
from runestone_server.approvals.service import Refused, now
from runestone_server.auth import MANAGE_ROLES, READ_ROLES, Principal, team_for
from runestone_server.events import record
from runestone_server.models import User, aware
from runestone_server.notify.references import holds_channels, without


def _users(db: Session, org_id: int, usernames: list[str]) -> list[User]:
    users = list(db.scalars(select(User).where(User.org_id == org_id,
                                               User.username.in_(usernames))))
    missing = sorted(set(usernames) - {u.username for u in users})
    if missing:
        raise Refused(400, f"no such users: {', '.join(missing)}")
    return users


def _check_channels(db: Session, org_id: int, team_id: int, channel_ids: list[int]) -> None:
    """A group is told through its own team's channels only: another team's channel would
    carry this team's asks (commands, paths, who asked) to people outside it."""
    if not channel_ids:
        return
    from runestone_server.notify.models import Channel

    found = set(db.scalars(select(Channel.id).where(Channel.org_id == org_id,
                                                    Channel.team_id == team_id,
                                                    Channel.id.in_(channel_ids))))
    missing = sorted(set(channel_ids) - found)
    if missing:
        raise Refused(400, f"no such notification channels in this team: {missing}")


def group_out(db: Session, group: ApproverGroup) -> dict[str, Any]:
    members = db.scalars(select(User.username).join(
        ApproverGroupMember, ApproverGroupMember.user_id == User.id).where(
        ApproverGroupMember.group_id == group.id).order_by(User.username))
    return {"id": group.id, "team_id": group.team_id, "name": group.name,
            "members": list(members), "channel_ids": list(group.channel_ids or [])}


def list_groups(db: Session, who: Principal, team_id: int) -> list[dict[str, Any]]:
    team = team_for(db, who, team_id, READ_ROLES)
    groups = db.scalars(select(ApproverGroup).where(ApproverGroup.team_id == team.id,
                                                    ApproverGroup.org_id == who.org_id)
                        .order_by(ApproverGroup.id))
    return [group_out(db, g) for g in groups]


def save_group(db: Session, who: Principal, team_id: int, name: str, members: list[str],
               channel_ids: list[int] | None, group_id: int | None = None) -> dict[str, Any]:
    """Create a group, or replace the members and channels of the group `group_id` (or,
    without an id, of the team's group with this name: saving is idempotent, so scripts
    can keep groups as configuration). `created` in the answer says which it was.
    `channel_ids` None keeps an existing group's channels (a form that does not show them
    must not clear them)."""
    team = team_for(db, who, team_id, MANAGE_ROLES)
    users = _users(db, who.org_id, members)
    if channel_ids is not None:
        _check_channels(db, who.org_id, team.id, channel_ids)
    if group_id is None:
        group_id = db.scalar(select(ApproverGroup.id).where(
            ApproverGroup.team_id == team.id, ApproverGroup.org_id == who.org_id,
            ApproverGroup.name == name))
        created = group_id is None
    else:
        created = False
    if group_id is None:
        group = ApproverGroup(org_id=who.org_id, team_id=team.id, name=name,
                              channel_ids=list(channel_ids or []))
        db.add(group)
        try:
            db.flush()
        except IntegrityError as exc:
            db.rollback()
            raise Refused(409, "this team already has a group with that name") from exc
    else:
        found = db.scalar(select(ApproverGroup).where(
            ApproverGroup.id == group_id, ApproverGroup.team_id == team.id,
            ApproverGroup.org_id == who.org_id))
        if found is None:
            raise Refused(404, "no such approver group")
        group = found
        group.name = name
        if channel_ids is not None:
            group.channel_ids = list(channel_ids)
        try:
            db.flush()
        except IntegrityError as exc:
            db.rollback()
            raise Refused(409, "this team already has a group with that name") from exc
        db.execute(delete(ApproverGroupMember).where(ApproverGroupMember.group_id == group.id))
    for user in users:
        db.add(ApproverGroupMember(org_id=who.org_id, group_id=group.id, user_id=user.id))
    record(db, who.org_id, team.id, who.name, "approval.group-saved",
           {"group": group.name, "members": sorted(members),
            "channel_ids": list(group.channel_ids or []), "created": created})
    db.commit()
    return {**group_out(db, group), "created": created}


@dataclass(frozen=True, slots=True)
class LevelSpec:
    group_id: int
    timeout_seconds: int
    quorum: int = 1


def delete_group(db: Session, who: Principal, team_id: int, group_id: int) -> None:
    """Delete a group no route names. A group a route's level names (archived routes too:
    asks already on them may still escalate to it) is refused, with the routes named."""
    team = team_for(db, who, team_id, MANAGE_ROLES)
    group = db.scalar(select(ApproverGroup).where(
        ApproverGroup.id == group_id, ApproverGroup.team_id == team.id,
        ApproverGroup.org_id == who.org_id))
    if group is None:
        raise Refused(404, "no such approver group")
    routes = sorted(set(db.scalars(select(ApprovalRoute.name).join(
        ApprovalLevel, ApprovalLevel.route_id == ApprovalRoute.id).where(
        ApprovalLevel.group_id == group.id))))
    if routes:
        raise Refused(409, f"the group decides in the routes {', '.join(routes)}; change "
                           "or remove them first (removed routes keep it for their asks)")
    db.execute(delete(ApproverGroupMember).where(ApproverGroupMember.group_id == group.id))
    db.delete(group)
    record(db, who.org_id, team.id, who.name, "approval.group-removed",
           {"group": group.name, "group_id": group_id})
    db.commit()


def route_out(db: Session, route: ApprovalRoute) -> dict[str, Any]:
    steps = db.scalars(select(ApprovalLevel).where(ApprovalLevel.route_id == route.id)
                       .order_by(ApprovalLevel.position))
    return {"id": route.id, "team_id": route.team_id, "name": route.name,
            "priority": route.priority, "labels": route.match_labels,
            "tool": route.tool_glob, "rule": route.rule_glob,
            "min_severity": route.min_severity,
            "levels": [{"group_id": s.group_id, "timeout_seconds": s.timeout_seconds,
                        "quorum": s.quorum} for s in steps]}


def list_routes(db: Session, who: Principal, team_id: int) -> list[dict[str, Any]]:
    team = team_for(db, who, team_id, READ_ROLES)
    routes = db.scalars(select(ApprovalRoute).where(ApprovalRoute.team_id == team.id,
                                                    ApprovalRoute.org_id == who.org_id,
                                                    ApprovalRoute.archived.is_(None))
                        .order_by(ApprovalRoute.priority, ApprovalRoute.id))
    return [route_out(db, r) for r in routes]


def create_route(db: Session, who: Principal, team_id: int, *, name: str, priority: int,
                 labels: dict[str, str], tool: str, rule: str, min_severity: str,
                 steps: list[LevelSpec]) -> dict[str, Any]:
    team = team_for(db, who, team_id, MANAGE_ROLES)
    if min_severity not in SEVERITIES:
        raise Refused(400, f"min_severity is one of {', '.join(SEVERITIES)}")
    if not steps:
        raise Refused(400, "a route needs at least one level")
    group_ids = {s.group_id for s in steps}
    found = set(db.scalars(select(ApproverGroup.id).where(
        ApproverGroup.id.in_(group_ids), ApproverGroup.team_id == team.id,
        ApproverGroup.org_id == who.org_id)))
    if found != group_ids:
        raise Refused(400, f"no such approver groups in this team: "
                           f"{sorted(group_ids - found)}")
    route = ApprovalRoute(org_id=who.org_id, team_id=team.id, name=name, priority=priority,
                          match_labels=dict(labels), tool_glob=tool or "*",
                          rule_glob=rule or "*", min_severity=min_severity)
    db.add(route)
    db.flush()
    for position, step in enumerate(steps):
        db.add(ApprovalLevel(org_id=who.org_id, route_id=route.id, position=position,
                             group_id=step.group_id, timeout_seconds=step.timeout_seconds,
                             quorum=step.quorum))
    record(db, who.org_id, team.id, who.name, "approval.route-created",
           {"route": name, "priority": priority, "labels": labels, "tool": tool,
            "rule": rule, "min_severity": min_severity,
            "levels": [[s.group_id, s.timeout_seconds, s.quorum] for s in steps]})
    db.commit()
    return route_out(db, route)


def archive_route(db: Session, who: Principal, team_id: int, route_id: int) -> None:
    """Stop routing new asks by this route (idempotent); asks already on it carry on."""
    team = team_for(db, who, team_id, MANAGE_ROLES)
    route = db.scalar(select(ApprovalRoute).where(
        ApprovalRoute.id == route_id, ApprovalRoute.team_id == team.id,
        ApprovalRoute.org_id == who.org_id))
    if route is None:
        raise Refused(404, "no such approval route")
    if route.archived is None:
        route.archived = now()
        record(db, who.org_id, team.id, who.name, "approval.route-removed",
               {"route": route.name, "route_id": route.id})
        db.commit()


def delegation_out(db: Session, delegation: Delegation) -> dict[str, Any]:
    names = dict(db.execute(select(User.id, User.username).where(
        User.id.in_([delegation.from_user_id, delegation.to_user_id]))).all())
    return {"id": delegation.id, "from": names.get(delegation.from_user_id),
            "to": names.get(delegation.to_user_id), "starts": aware(delegation.starts),
            "ends": aware(delegation.ends), "revoked": aware(delegation.revoked)}


def delegate(db: Session, who: Principal, to: str, starts: datetime | None,
             ends: datetime) -> dict[str, Any]:
    """I let `to` decide in my place from `starts` (default now) until `ends`."""
    # In UTC: SQLite keeps the wall time and drops the offset, so store what compares right.
    try:
        starts = (aware(starts) or now()).astimezone(UTC)
        ends = aware(ends).astimezone(UTC)  # type: ignore[union-attr]
    except OverflowError as exc:
        raise Refused(400, "a delegation's dates are out of range") from exc
    if ends <= starts:
        raise Refused(400, "a delegation must end after it starts")
    (target,) = _users(db, who.org_id, [to])
    if target.id == who.user.id:
        raise Refused(400, "you cannot delegate to yourself")
    delegation = Delegation(org_id=who.org_id, from_user_id=who.user.id,
                            to_user_id=target.id, starts=starts, ends=ends, created=now())
    db.add(delegation)
    record(db, who.org_id, None, who.name, "approval.delegated",
           {"to": target.username, "starts": starts.isoformat(), "ends": ends.isoformat()})
    db.commit()
    return delegation_out(db, delegation)


def list_delegations(db: Session, who: Principal) -> list[dict[str, Any]]:
    rows = db.scalars(select(Delegation).where(
        Delegation.org_id == who.org_id, (Delegation.from_user_id == who.user.id)
        | (Delegation.to_user_id == who.user.id)).order_by(Delegation.id))
    return [delegation_out(db, d) for d in rows]


def revoke_delegation(db: Session, who: Principal, delegation_id: int) -> None:
    delegation = db.scalar(select(Delegation).where(
        Delegation.id == delegation_id, Delegation.org_id == who.org_id,
        Delegation.from_user_id == who.user.id))
    if delegation is None:
        raise Refused(404, "no such delegation of yours")
    if delegation.revoked is None:
        delegation.revoked = now()
        record(db, who.org_id, None, who.name, "approval.delegation-revoked",
               {"delegation_id": delegation.id})
        db.commit()


@holds_channels("approvals")
def forget_channel_in_approvals(db: Session, org_id: int, team_id: int,
                                channel_id: int) -> None:
    """A deleted channel leaves the team's approver groups and its fallback channels."""
    for group in db.scalars(select(ApproverGroup).where(ApproverGroup.org_id == org_id,
                                                        ApproverGroup.team_id == team_id)):
        if (kept := without(group.channel_ids, channel_id)) is not None:
            group.channel_ids = kept
    settings = db.scalar(select(ApprovalTeamSettings).where(
        ApprovalTeamSettings.org_id == org_id, ApprovalTeamSettings.team_id == team_id))
    if settings is not None and \
            (kept := without(settings.fallback_channel_ids, channel_id)) is not None:
        settings.fallback_channel_ids = kept
