"""The audit domain's tables: entries shipped by runtimes, each runtime's chain state on the
server, the signed checkpoints kept (also after pruning), and retention per tenant.

`audit_entries` keeps the whole entry as the runtime wrote it (`entry`), so its hash can be
recomputed at any time, plus the columns search filters on. `(runtime_id, seq)` is unique:
an entry is stored exactly once, however often a runtime re-sends it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from runestone_server.audit.search_schema import SEARCH_INDEXES
from runestone_server.models import Base, utcnow

# BIGINT on PostgreSQL (millions of entries), INTEGER on SQLite so it stays the rowid and
# autoincrements.
BigId = BigInteger().with_variant(Integer, "sqlite")


class AuditEntry(Base):
    """One runtime audit entry as received, verified against its runtime's chain."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        UniqueConstraint("runtime_id", "seq", name="uq_audit_entries_runtime_seq"),
        Index("ix_audit_entries_org_time", "org_id", "time"),
        *SEARCH_INDEXES,  # audit search (migration 0102_audit_search)
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No index of its own: `ix_audit_entries_org_time` starts with it (migration
    # 1101_audit_text_columns dropped the one that repeated it; every insert paid for both).
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    runtime_id: Mapped[str] = mapped_column(String(80))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    tool: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    severity: Mapped[str | None] = mapped_column(String(20), nullable=True)
    rule: Mapped[str | None] = mapped_column(String(200), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    user: Mapped[str | None] = mapped_column("user", String(200), nullable=True)
    approver: Mapped[str | None] = mapped_column(String(200), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    action_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    policy_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str] = mapped_column(String(64))
    entry: Mapped[dict[str, Any]] = mapped_column(JSON)
    received: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The entry's `reason` and `purpose` as the full-text document reads them (ingest's
    # `document_fields`), so PostgreSQL's index expression reads columns instead of parsing
    # the `json` text of every inserted row (migration 1101_audit_text_columns).
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    purpose: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditChain(Base):
    """The server's view of one runtime's chain: the verified head, and whether it broke.

    `base_seq`/`base_hash` is where verification of the stored entries starts: the genesis
    (seq 0) until retention prunes, then the kept checkpoint the remaining entries chain to.
    """

    __tablename__ = "audit_chains"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    runtime_ref: Mapped[int] = mapped_column(ForeignKey("runtimes.id"), unique=True)
    runtime_id: Mapped[str] = mapped_column(String(80), unique=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    base_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    base_hash: Mapped[str] = mapped_column(String(64))
    checkpoint_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checkpoint_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    checkpoint_signature: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="ok")  # ok | broken
    problem: Mapped[str | None] = mapped_column(Text, nullable=True)
    problem_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When the worker last re-walked the stored entries (see audit/reverify.py).
    reverified: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditCheckpoint(Base):
    """A runtime-signed checkpoint `{runtime, seq, hash}` whose signature verified on
    ingest. Kept when retention prunes the entries it covers, so pruned history stays
    provable: the remaining entries chain to a hash the runtime itself signed."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (
        UniqueConstraint("runtime_id", "seq", name="uq_audit_checkpoints_runtime_seq"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    runtime_id: Mapped[str] = mapped_column(String(80))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    received: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditRetention(Base):
    """How many days of audit entries an organisation keeps (no row: keep forever)."""

    __tablename__ = "audit_retention"
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_pruned: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                         nullable=True)
