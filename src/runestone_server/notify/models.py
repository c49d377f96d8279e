"""Notification channels and the delivery outbox.

A delivery is a row written in the same transaction as whatever caused it (an approval
request, a fired alert), so a notification is never lost when a send fails or a replica
dies: the worker sends what is due and records the outcome on the row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from runestone_server.models import Base, utcnow

KINDS = ("webhook", "slack", "email")
STATUSES = ("pending", "delivered", "failed")


class Channel(Base):
    """Where notifications go: a signed webhook, a Slack-compatible webhook, or e-mail.

    `target` is the URL, or comma-separated e-mail addresses. `secret` is the webhook's
    HMAC key: it has to be kept (not hashed) because the server signs with it."""

    __tablename__ = "notification_channels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), nullable=True,
                                                index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128), default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Delivery(Base):
    """One notification to one channel; `next_attempt` is also the claim's lease, and
    `claim_token` names the claim holding it (see `delivery`).

    A dedup key is unique per channel in the database, not by a look before the insert:
    two transactions enqueueing the same message at once would both see nothing there.
    Rows without a key (NULL) never collide."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_due", "status", "next_attempt"),
        UniqueConstraint("channel_id", "dedup_key", name="uq_notification_deliveries_dedup"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("notification_channels.id"))
    subject: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedup_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
