"""Alert rules, the alerts they fired, and each organisation's evaluation cursor.

The cursor row is also the evaluation's lock: a replica advances it with a conditional
UPDATE before it fires anything, in the same transaction as the alerts and their outbox
rows, so two replicas never fire the same alert and a crash fires nothing half-way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from runestone_server.models import Base, utcnow

EVENTS = ("deny", "approval_expired", "chain_problem", "policy_published", "runtime_silent",
          "drift", "deny_spike", "limit_hits")


class AlertRule(Base):
    """When `event` happens in the team (and `conditions` hold), notify `channel_ids`;
    the same alert (same dedup key) fires at most once per `dedup_minutes`."""

    __tablename__ = "alert_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(40))
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    channel_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    dedup_minutes: Mapped[int] = mapped_column(Integer, default=60)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Alert(Base):
    """One fired alert, kept as history after its rule is deleted (rule_id then NULL)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_rule_dedup", "rule_id", "dedup_key", "fired"),
                      Index("ix_alerts_team_fired", "team_id", "fired"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("alert_rules.id"), nullable=True)
    rule_name: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(40))
    dedup_key: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(500))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fired: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AlertCursor(Base):
    """How far an organisation's server events and audit entries have been evaluated."""

    __tablename__ = "alert_cursors"
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True,
                                        autoincrement=False)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    last_audit_id: Mapped[int] = mapped_column(BigInteger, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)  # bumped by each evaluation
    evaluated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
