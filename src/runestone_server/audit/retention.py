"""Retention per tenant: entries older than the organisation's setting are deleted, but only
up to a kept, runtime-signed checkpoint, so what remains still verifies from a hash the
runtime itself signed.

Pruning never cuts a chain between checkpoints: entries past the newest checkpoint that is
old enough stay until a later checkpoint covers them (runtimes write one every 256 entries
by default, and on `runestone audit checkpoint`). Keeping a few days too many is the price
of a history that stays provable.

The worker task claims an organisation with a conditional UPDATE of `last_pruned`, so one
replica prunes it per period however many run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from runestone_server.audit.models import AuditChain, AuditCheckpoint, AuditEntry, AuditRetention
from runestone_server.db import Database
from runestone_server.events import record
from runestone_server.worker import task

DELETE_CHUNK = 10_000


def prune_period() -> timedelta:
    """How often one organisation is pruned (RUNESTONE_AUDIT_PRUNE_EVERY seconds)."""
    return timedelta(seconds=float(os.environ.get("RUNESTONE_AUDIT_PRUNE_EVERY", "3600")))


@dataclass
class PruneResult:
    org_id: int
    cutoff: datetime
    deleted: int = 0
    runtimes: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"org_id": self.org_id, "cutoff": self.cutoff.isoformat(),
                "deleted": self.deleted, "runtimes": self.runtimes}


def set_retention(db: Session, org_id: int, days: int | None, actor: str) -> None:
    """Keep `days` of entries for the organisation; None keeps everything."""
    row = db.get(AuditRetention, org_id)
    if days is None:
        if row is not None:
            db.delete(row)
    elif row is None:
        db.add(AuditRetention(org_id=org_id, days=days, updated=datetime.now(UTC)))
    else:
        row.days, row.updated = days, datetime.now(UTC)
    record(db, org_id, None, actor, "audit.retention_set", {"days": days})
    db.commit()


def _prune_chain(db: Session, chain: AuditChain, cutoff: datetime) -> dict[str, Any] | None:
    """Delete this runtime's entries up to its newest kept checkpoint older than `cutoff`."""
    # Lock the chain against a concurrent ingest first (SQLite write lock / PG row lock).
    db.execute(update(AuditChain).where(AuditChain.id == chain.id)
               .values(updated=datetime.now(UTC)))
    db.refresh(chain)
    # Only a checkpoint that names the hash the stored chain has at its seq: the remaining
    # entries must chain to what it signs (a record that disagrees is a problem for
    # verification to report, never a place to cut).
    checkpoint = db.scalar(
        select(AuditCheckpoint)
        .join(AuditEntry, (AuditEntry.runtime_id == AuditCheckpoint.runtime_id)
              & (AuditEntry.seq == AuditCheckpoint.seq)
              & (AuditEntry.hash == AuditCheckpoint.hash))
        .where(AuditCheckpoint.runtime_id == chain.runtime_id,
               AuditCheckpoint.seq > chain.base_seq, AuditCheckpoint.seq <= chain.last_seq,
               AuditEntry.time < cutoff)
        .order_by(AuditCheckpoint.seq.desc()).limit(1))
    if checkpoint is None:
        return None
    deleted, low = 0, chain.base_seq
    while low < checkpoint.seq:
        high = min(low + DELETE_CHUNK, checkpoint.seq)
        deleted += db.execute(delete(AuditEntry).where(
            AuditEntry.runtime_id == chain.runtime_id, AuditEntry.seq > low,
            AuditEntry.seq <= high)).rowcount
        low = high
    chain.base_seq, chain.base_hash = checkpoint.seq, checkpoint.hash
    detail = {"runtime_id": chain.runtime_id, "through_seq": checkpoint.seq,
              "kept_checkpoint_hash": checkpoint.hash, "deleted": deleted,
              "cutoff": cutoff.isoformat()}
    record(db, chain.org_id, chain.team_id, "server:retention", "audit.pruned", detail)
    db.commit()
    return detail


def prune_org(db: Session, org_id: int, days: int, now: datetime | None = None) -> PruneResult:
    """Prune every runtime chain of one organisation to `days` of history."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    result = PruneResult(org_id, cutoff)
    chains = db.scalars(select(AuditChain).where(AuditChain.org_id == org_id)
                        .order_by(AuditChain.id)).all()
    for chain in chains:
        detail = _prune_chain(db, chain, cutoff)
        if detail:
            result.deleted += detail["deleted"]
            result.runtimes.append(detail)
    return result


def claim(db: Session, org_id: int, now: datetime) -> bool:
    """Take this organisation's pruning for this period; False if another replica has."""
    claimed = db.execute(update(AuditRetention).where(
        AuditRetention.org_id == org_id,
        or_(AuditRetention.last_pruned.is_(None),
            AuditRetention.last_pruned <= now - prune_period()))
        .values(last_pruned=now)).rowcount
    db.commit()
    return bool(claimed)


@task("audit.retention")
def prune_due(database: Database) -> None:
    """Worker task: prune each organisation whose period is due."""
    now = datetime.now(UTC)
    with database.sessions() as db:
        due = db.execute(select(AuditRetention.org_id, AuditRetention.days).where(or_(
            AuditRetention.last_pruned.is_(None),
            AuditRetention.last_pruned <= now - prune_period()))).all()
        for org_id, days in due:
            if claim(db, org_id, now):
                prune_org(db, org_id, days, now)


def entry_count(db: Session, org_id: int) -> int:
    return int(db.scalar(select(func.count()).select_from(AuditEntry)
                         .where(AuditEntry.org_id == org_id)) or 0)
