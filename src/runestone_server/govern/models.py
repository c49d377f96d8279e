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

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
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
