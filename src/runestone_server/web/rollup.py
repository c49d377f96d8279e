"""The worker task that keeps `web_decision_days` current from the ingested audit.

Each tick counts the decisions of audit entries past its watermark (a few batches at most);
`audit.watermark` says why each entry is counted once, even by racing replicas.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone_server.audit import watermark
from runestone_server.audit.models import AuditEntry
from runestone_server.db import Database
from runestone_server.web.models import DecisionDay, RollupMark
from runestone_server.worker import task

BATCH = 20_000
BATCHES_PER_TICK = 10


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
    found = watermark.next_batch(db, RollupMark, BATCH, now)
    if found is None:
        return 0
    start, upper = found
    counts: Counter[tuple[int, int, object, str, str]] = Counter()
    rows = db.execute(select(AuditEntry.org_id, AuditEntry.team_id, AuditEntry.time,
                             AuditEntry.decision, AuditEntry.rule).where(
        AuditEntry.id > start, AuditEntry.id <= upper, AuditEntry.kind == "decision"))
    for org_id, team_id, moment, decision, rule in rows:
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        counts[(org_id, team_id, moment.astimezone(UTC).date(), (decision or "?")[:20],
                (rule or "")[:200])] += 1
    if not watermark.advance(db, RollupMark, start, upper):
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
