"""The worker task that keeps `web_decision_days` current from the ingested audit.

Each tick counts the decisions of audit entries past the watermark (a few batches at most)
and moves the watermark with a conditional UPDATE in the same transaction, so two replicas
racing on one PostgreSQL count each entry once: the loser's UPDATE matches no row and it
rolls back. Entries received in the last `SETTLE` seconds wait for the next tick, so an
ingest transaction still open (holding a lower id) is not skipped.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runestone_server.audit.models import AuditEntry
from runestone_server.db import Database
from runestone_server.web.models import DecisionDay, RollupMark
from runestone_server.worker import task

BATCH = 20_000
BATCHES_PER_TICK = 10
SETTLE = timedelta(seconds=2)


def _upsert(db: Session, counts: Counter[tuple[int, int, object, str, str]]) -> None:
    table = DecisionDay.__table__
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    rows = [{"org_id": o, "team_id": t, "day": d, "decision": dec, "rule": r, "count": n}
            for (o, t, d, dec, r), n in counts.items()]
    for start in range(0, len(rows), 500):
        statement = insert(table).values(rows[start:start + 500])
        db.execute(statement.on_conflict_do_update(
            index_elements=["org_id", "team_id", "day", "decision", "rule"],
            set_={"count": table.c.count + statement.excluded.count}))


def roll_up_once(db: Session, now: datetime | None = None) -> int:
    """Count one batch; the number of entries the watermark moved past (0: nothing new)."""
    mark = db.get(RollupMark, 1)
    if mark is None:
        db.add(RollupMark(id=1, last_entry_id=0))
        try:
            db.commit()
        except IntegrityError:  # another replica made it first
            db.rollback()
        mark = db.get(RollupMark, 1)
        assert mark is not None
    start = mark.last_entry_id
    settled = (now or datetime.now(UTC)) - SETTLE
    ids = select(AuditEntry.id).where(AuditEntry.id > start, AuditEntry.received < settled
                                      ).order_by(AuditEntry.id).limit(BATCH).subquery()
    upper = db.scalar(select(func.max(ids.c.id)))
    if upper is None:
        db.rollback()
        return 0
    counts: Counter[tuple[int, int, object, str, str]] = Counter()
    rows = db.execute(select(AuditEntry.org_id, AuditEntry.team_id, AuditEntry.time,
                             AuditEntry.decision, AuditEntry.rule).where(
        AuditEntry.id > start, AuditEntry.id <= upper, AuditEntry.kind == "decision"))
    for org_id, team_id, moment, decision, rule in rows:
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        counts[(org_id, team_id, moment.astimezone(UTC).date(), (decision or "?")[:20],
                (rule or "")[:200])] += 1
    moved = db.execute(update(RollupMark).where(
        RollupMark.id == 1, RollupMark.last_entry_id == start).values(
        last_entry_id=upper, updated=datetime.now(UTC)).execution_options(
        synchronize_session=False))
    if moved.rowcount != 1:
        db.rollback()
        return 0
    if counts:
        _upsert(db, counts)
    db.commit()
    return upper - start


@task("web.decision_rollup")
def roll_up(database: Database) -> None:
    for _ in range(BATCHES_PER_TICK):
        with database.sessions() as db:
            if not roll_up_once(db):
                return
