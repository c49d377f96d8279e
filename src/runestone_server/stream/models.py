"""The stream outbox and each target's delivery state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from runestone_server.audit.models import BigId
from runestone_server.models import Base, utcnow


class StreamOutbox(Base):
    """One record waiting for one target: an audit entry (`source` audit, `ref` its row id)
    or a server event (`source` event). Deleted once the target has taken it."""

    __tablename__ = "stream_outbox"
    __table_args__ = (Index("ix_stream_outbox_target_id", "target", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(10))
    ref: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                           nullable=True)


class StreamTarget(Base):
    """A target's health: consecutive failures, when to try again, since when it fails."""

    __tablename__ = "stream_targets"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="ok")  # ok | failing
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                           nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
