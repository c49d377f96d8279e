"""Enqueue: outbox rows written in the same transaction as what they stream.

Audit entries are enqueued by ingest with one INSERT ... SELECT per target over the seqs the
batch stored; server events by a flush hook on every session, so no place that records an
event can forget to stream it. Either way a row exists exactly when the entry or event was
committed: a crash before the commit loses both, after it neither.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, event, insert, literal, select
from sqlalchemy.orm import Session

from runestone_server.audit.models import AuditEntry
from runestone_server.models import ServerEvent, utcnow
from runestone_server.stream import targets
from runestone_server.stream.models import StreamOutbox


def enqueue_audit(db: Session, runtime_id: str, low: int, high: int) -> None:
    """Outbox rows for the runtime's stored entries with seq in (low, high]."""
    if high <= low:
        return
    now = utcnow()
    for name in targets.names():
        rows = select(literal(name), literal("audit"), AuditEntry.id, literal(now)).where(
            and_(AuditEntry.runtime_id == runtime_id, AuditEntry.seq > low,
                 AuditEntry.seq <= high))
        db.execute(insert(StreamOutbox).from_select(
            ["target", "source", "ref", "created"], rows))


@event.listens_for(Session, "after_flush")
def _events_flushed(session: Session, _context: Any) -> None:
    """Outbox rows for the server events this flush inserted (they have ids now)."""
    names = targets.names()
    if not names:
        return
    new = [item.id for item in session.new if isinstance(item, ServerEvent)]
    if not new:
        return
    now = utcnow()
    session.connection().execute(insert(StreamOutbox), [
        {"target": name, "source": "event", "ref": ref, "created": now}
        for name in names for ref in new])
