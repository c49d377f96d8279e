"""The approval domain's tables: who approves (groups, delegations), how asks are routed
(routes and their escalation levels), and the asks themselves with their votes.

Every row carries its organisation so every query can be scoped to the caller's tenant.
The timeline of a request is not a table here: each step is a ServerEvent whose detail
names the request (`detail.request_id`), so audit search and alerts read one stream.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

import runestone.approvals as runtime_approvals
from runestone_server.models import Base, utcnow

STATES = ("pending", "approved", "denied", "expired", "cancelled", "host")
VOTES = ("approve", "deny")
# What an approval covers: this exact action once, or also the request's rules for the
# requesting session for some minutes (the runtime makes the grants; see `service.vote`).
SCOPES = ("once", "rule-session")
MAX_SCOPE_MINUTES = runtime_approvals.MAX_SCOPE_MINUTES  # the runtime verifies against it
SEVERITIES = ("low", "medium", "high", "critical")


class ApproverGroup(Base):
    """People who decide together; `channel_ids` are notification channels told of asks."""

    __tablename__ = "approver_groups"
    __table_args__ = (UniqueConstraint("team_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    channel_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApprovalTeamSettings(Base):
    """A team's approval settings that belong to no group: `fallback_channel_ids` are the
    notification channels told of the asks no route matches (the fallback has no group to
    carry channels). One row per team, made when a manager first saves them."""

    __tablename__ = "approval_team_settings"
    __table_args__ = (UniqueConstraint("team_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    fallback_channel_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApproverGroupMember(Base):
    __tablename__ = "approver_group_members"
    __table_args__ = (UniqueConstraint("group_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("approver_groups.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)


class ApprovalRoute(Base):
    """Which asks go where. Empty matchers match everything; the lowest priority wins."""

    __tablename__ = "approval_routes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, default=100)
    match_labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    tool_glob: Mapped[str] = mapped_column(String(200), default="*")
    rule_glob: Mapped[str] = mapped_column(String(200), default="*")
    min_severity: Mapped[str] = mapped_column(String(20), default="low")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Removing a route archives it: requests already on it keep their levels and story.
    archived: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApprovalLevel(Base):
    """One step of a route's escalation: its group decides within `timeout_seconds`, with
    `quorum` distinct approvers."""

    __tablename__ = "approval_levels"
    __table_args__ = (UniqueConstraint("route_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("approval_routes.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    group_id: Mapped[int] = mapped_column(ForeignKey("approver_groups.id"), index=True)
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    quorum: Mapped[int] = mapped_column(Integer, default=1)


class Delegation(Base):
    """`from_user` lets `to_user` decide in their place between `starts` and `ends`."""

    __tablename__ = "approval_delegations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    from_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    to_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    starts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApprovalRequest(Base):
    """One ask from a runtime. `level` indexes the route's levels; `route_id` None means
    the team's fallback (its owners, admins and approvers, one level). The decision's
    signature is not stored: Ed25519 is deterministic, so any replica signs it again, the
    same, when a runtime asks (and the worker that expires requests needs no key)."""

    __tablename__ = "approval_requests"
    __table_args__ = (UniqueConstraint("runtime_pk", "request_id"),
                      Index("ix_approval_requests_due", "state", "level_deadline"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    runtime_pk: Mapped[int] = mapped_column(ForeignKey("runtimes.id"), index=True)
    request_id: Mapped[str] = mapped_column(String(80), index=True)
    action_hash: Mapped[str] = mapped_column(String(64))
    tool: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[str] = mapped_column(String(200), default="")
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    severity: Mapped[str] = mapped_column(String(20), default="medium")
    requester: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    input: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    route_id: Mapped[int | None] = mapped_column(ForeignKey("approval_routes.id"),
                                                 nullable=True)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    level: Mapped[int] = mapped_column(Integer, default=0)
    level_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                            nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_reason: Mapped[str] = mapped_column(Text, default="")
    # The decided scope: the narrowest of the deciding level's approvals (signed with the
    # decision). `scope_minutes` is 0 for "once".
    scope: Mapped[str] = mapped_column(String(20), default="once", server_default="once")
    scope_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ApprovalVote(Base):
    """One person's vote at one level. `user_id` is who acted; `on_behalf_of` the member
    they stood in for through a delegation. One vote per person per level."""

    __tablename__ = "approval_votes"
    __table_args__ = (UniqueConstraint("approval_id", "level", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    approval_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"), index=True)
    level: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    on_behalf_of: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    vote: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text, default="")
    # What an approve covers (a deny is "once", 0): see SCOPES.
    scope: Mapped[str] = mapped_column(String(20), default="once", server_default="once")
    minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
