"""What alert evaluation reads: an organisation's new server events and new denies.

Both are read by id after a cursor. Ids are handed out when a row is inserted but become
visible when its transaction commits, so a row with a smaller id can appear after a larger
one; reading only rows older than `settle()` seconds (by their own timestamp) leaves time
for such stragglers before the cursor moves past them.

The audit domain is optional here: without its module there are no denies to read.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone_server.models import ServerEvent

SETTLE = 5.0  # seconds, unless RUNESTONE_ALERTS_SETTLE says otherwise
EVENT_BATCH = 1000
AUDIT_BATCH = 5000


def audit_entry_model() -> Any | None:
    """The audit domain's AuditEntry class, or None if that domain is not installed."""
    try:
        return importlib.import_module("runestone_server.audit.models").AuditEntry
    except ModuleNotFoundError as exc:
        if exc.name not in ("runestone_server.audit", "runestone_server.audit.models"):
            raise
        return None


@dataclass
class Batch:
    """New rows since the cursor, and where the cursor moves when they are handled."""

    events: list[ServerEvent] = field(default_factory=list)
    denies: list[Any] = field(default_factory=list)  # AuditEntry rows: decision = deny
    last_event_id: int = 0
    last_audit_id: int = 0


def settle() -> float:
    return float(os.environ.get("RUNESTONE_ALERTS_SETTLE", SETTLE))


def high_water(db: Session, now: datetime) -> tuple[int, int]:
    """The newest settled ids (server events, audit entries) over every organisation.

    Ids are global, so an organisation's cursor can move up to here even when none of the
    rows in between are its own; that keeps each evaluation's id range to what arrived
    since the last one. Walking the primary key down to the first settled row stops after
    the few rows of the last seconds, on SQLite and PostgreSQL alike (a max() with a
    filter would scan the table)."""
    settled = now - timedelta(seconds=settle())
    last_event = db.scalar(select(ServerEvent.id).where(ServerEvent.created <= settled)
                           .order_by(ServerEvent.id.desc()).limit(1)) or 0
    entry = audit_entry_model()
    last_audit = 0
    if entry is not None:
        last_audit = db.scalar(select(entry.id).where(entry.received <= settled)
                               .order_by(entry.id.desc()).limit(1)) or 0
    return last_event, last_audit


def read(db: Session, org_id: int, after_event: int, after_audit: int,
         now: datetime) -> Batch:
    top_event, top_audit = high_water(db, now)
    batch = Batch(last_event_id=max(after_event, top_event),
                  last_audit_id=max(after_audit, top_audit))
    batch.events = list(db.scalars(select(ServerEvent).where(
        ServerEvent.org_id == org_id, ServerEvent.id > after_event,
        ServerEvent.id <= batch.last_event_id,
    ).order_by(ServerEvent.id).limit(EVENT_BATCH)))
    if len(batch.events) == EVENT_BATCH:
        batch.last_event_id = batch.events[-1].id  # the rest next tick
    entry = audit_entry_model()
    if entry is not None and batch.last_audit_id > after_audit:
        batch.denies = list(db.scalars(select(entry).where(
            entry.org_id == org_id, entry.id > after_audit, entry.id <= batch.last_audit_id,
            entry.kind == "decision", entry.decision == "deny",
        ).order_by(entry.id).limit(AUDIT_BATCH)))
        if len(batch.denies) == AUDIT_BATCH:
            batch.last_audit_id = batch.denies[-1].id
    return batch
