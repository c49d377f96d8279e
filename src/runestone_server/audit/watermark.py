"""A watermark over the stored audit entries, for worker tasks that count what arrived.

A task keeps one row (id 1) holding the last entry id it has counted. `next_batch` says which
ids come next; the task counts them and calls `advance` in the same transaction, whose
conditional UPDATE moves the mark only from where this batch began. Two replicas racing on
one PostgreSQL therefore count each entry once: the loser's UPDATE matches no row and it
rolls back. Entries received in the last `SETTLE` are left for the next tick, so an ingest
transaction still open (holding a lower id) is not skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runestone_server.audit.models import AuditEntry

SETTLE = timedelta(seconds=2)


def next_batch(db: Session, mark_model: Any, batch: int,
               now: datetime | None = None) -> tuple[int, int] | None:
    """(start, upper): count the entries with start < id <= upper. None when nothing has
    settled past the mark (the session is rolled back)."""
    mark = db.get(mark_model, 1)
    if mark is None:
        db.add(mark_model(id=1, last_entry_id=0))
        try:
            db.commit()
        except IntegrityError:  # another replica made it first
            db.rollback()
        mark = db.get(mark_model, 1)
        assert mark is not None
    start = mark.last_entry_id
    settled = (now or datetime.now(UTC)) - SETTLE
    ids = select(AuditEntry.id).where(AuditEntry.id > start, AuditEntry.received < settled
                                      ).order_by(AuditEntry.id).limit(batch).subquery()
    upper = db.scalar(select(func.max(ids.c.id)))
    if upper is None:
        db.rollback()
        return None
    return start, upper


def advance(db: Session, mark_model: Any, start: int, upper: int) -> bool:
    """Move the mark from `start` to `upper`; False (rolled back) if another replica already
    moved it, so this batch's counts must not be written."""
    moved = db.execute(update(mark_model).where(
        mark_model.id == 1, mark_model.last_entry_id == start).values(
        last_entry_id=upper, updated=datetime.now(UTC)).execution_options(
        synchronize_session=False))
    if moved.rowcount != 1:
        db.rollback()
        return False
    return True
