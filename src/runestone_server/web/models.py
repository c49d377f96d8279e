"""The dashboard's tables: a daily roll-up of decisions, so the overview reads a few
hundred rows instead of scanning millions of audit entries on every visit.

`web_decision_days` counts the ingested decisions per organisation, team, UTC day, outcome
and rule; `web_rollup` is the single watermark row (the highest audit entry id counted),
which the worker advances with a conditional UPDATE in the same transaction as the counts,
so replicas never count an entry twice.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from runestone_server.models import Base, utcnow


class DecisionDay(Base):
    __tablename__ = "web_decision_days"
    __table_args__ = (UniqueConstraint("org_id", "team_id", "day", "decision", "rule",
                                       name="uq_web_decision_days"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    day: Mapped[date] = mapped_column(Date)
    decision: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(String(200), default="")
    count: Mapped[int] = mapped_column(Integer, default=0)


class RollupMark(Base):
    __tablename__ = "web_rollup"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_entry_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
