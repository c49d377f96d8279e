"""The governance domain's tables: a daily roll-up of the ingested audit by agent and tool,
and one of the asks by rule and program, kept current by the worker (usage.py), so the
usage and friction pages read a few hundred rows instead of scanning the audit.

`govern_usage_days` counts, per organisation, team, UTC day, agent and tool, the decisions,
asks, human approvals, denies and limit hits; `govern_ask_days` counts the asks per day,
rule and program; `govern_usage_mark` is the watermark row (the highest audit entry id
counted), advanced with a conditional UPDATE in the same transaction as the counts, so
replicas never count an entry twice.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from runestone_server.models import Base, utcnow

COUNTS = ("decisions", "asks", "approvals", "denies", "limit_hits")


class UsageDay(Base):
    __tablename__ = "govern_usage_days"
    __table_args__ = (UniqueConstraint("org_id", "team_id", "day", "agent", "tool",
                                       name="uq_govern_usage_days"),
                      Index("ix_govern_usage_days_team_day", "team_id", "day"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    day: Mapped[date] = mapped_column(Date)
    agent: Mapped[str] = mapped_column(String(200), default="")
    tool: Mapped[str] = mapped_column(String(200), default="")
    decisions: Mapped[int] = mapped_column(Integer, default=0)
    asks: Mapped[int] = mapped_column(Integer, default=0)
    approvals: Mapped[int] = mapped_column(Integer, default=0)
    denies: Mapped[int] = mapped_column(Integer, default=0)
    limit_hits: Mapped[int] = mapped_column(Integer, default=0)


class AskDay(Base):
    __tablename__ = "govern_ask_days"
    __table_args__ = (UniqueConstraint("org_id", "team_id", "day", "rule", "program",
                                       name="uq_govern_ask_days"),
                      Index("ix_govern_ask_days_team_day", "team_id", "day"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    day: Mapped[date] = mapped_column(Date)
    rule: Mapped[str] = mapped_column(String(200), default="")
    program: Mapped[str] = mapped_column(String(200), default="")
    count: Mapped[int] = mapped_column(Integer, default=0)


class UsageMark(Base):
    __tablename__ = "govern_usage_mark"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_entry_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProposalSettings(Base):
    """A team's thresholds for proposing a rule: the approvals an action (or a group of
    them one rule covers) needs, and by how many different people. No row: the defaults."""

    __tablename__ = "govern_proposal_settings"
    __table_args__ = (UniqueConstraint("team_id", name="uq_govern_proposal_settings_team"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    min_approvals: Mapped[int] = mapped_column(Integer, default=3)
    min_people: Mapped[int] = mapped_column(Integer, default=1)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Grant(Base):
    """A pre-approval an approver issued: an exact action (`action_key`, the runtime's
    `approvals.action_key`: tool, input, cwd) or a rule (`rule`, a table in the runtime's
    rule language), for the team's runtimes matching `labels` and, when given, only these
    `sessions` or `agents`; `uses` in all, until `expires`. `used` counts the uses spent
    online; `reserved` the uses allotted to runtimes for offline use (`offline_uses` each),
    so used + reserved never exceeds uses."""

    __tablename__ = "govern_grants"
    __table_args__ = (UniqueConstraint("grant_id", name="uq_govern_grants_grant_id"),
                      Index("ix_govern_grants_team", "team_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    grant_id: Mapped[str] = mapped_column(String(40))
    action_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    sessions: Mapped[list[str]] = mapped_column(JSON, default=list)
    agents: Mapped[list[str]] = mapped_column(JSON, default=list)
    uses: Mapped[int] = mapped_column(Integer)
    used: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    offline_uses: Mapped[int] = mapped_column(Integer, default=0)
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    revoked_reason: Mapped[str] = mapped_column(Text, default="")


class GrantAllotment(Base):
    """Uses of a grant set aside for one runtime to spend while the server is away."""

    __tablename__ = "govern_grant_allotments"
    __table_args__ = (UniqueConstraint("grant_pk", "runtime_pk",
                                       name="uq_govern_grant_allotments"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    grant_pk: Mapped[int] = mapped_column(ForeignKey("govern_grants.id"))
    runtime_pk: Mapped[int] = mapped_column(ForeignKey("runtimes.id"))
    count: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GrantUse(Base):
    """One use counted on the server: which runtime spent it, on which action."""

    __tablename__ = "govern_grant_uses"
    __table_args__ = (Index("ix_govern_grant_uses_grant", "grant_pk"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    grant_pk: Mapped[int] = mapped_column(ForeignKey("govern_grants.id"))
    runtime_pk: Mapped[int] = mapped_column(ForeignKey("runtimes.id"))
    action_key: Mapped[str] = mapped_column(String(64))
    session: Mapped[str] = mapped_column(String(200), default="")
    agent: Mapped[str] = mapped_column(String(200), default="")
    use: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
