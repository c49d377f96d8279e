"""The worker re-walks every stored chain periodically, so tampering with the server's
database is found without anyone opening the verify page.

Ingest checks what a runtime sends; it cannot see a row changed or deleted afterwards, by an
operator or an attacker with database access. `verify_stored` can, and this task runs it on
each chain that has not been re-verified for `RUNESTONE_AUDIT_REVERIFY_EVERY` seconds (six
hours by default; 0 turns the task off), a few chains per tick, for about a second after
the first, so the escalations and notifications that share the tick are not held up. A
problem found is kept on the chain and raised as `audit.chain_problem` (found by `worker`),
which alert rules on `chain_problem` turn into a message.

A chain's period starts when it is created (ingest checks every entry as it arrives; what
can change afterwards is first worth walking a period later); a chain from before this task
existed is due at once. Each chain is claimed with a conditional UPDATE of its `reverified`
time before it is walked, so replicas over one database walk it once per period. Chains
already broken are skipped: their first problem is kept and shown, and walking them again
finds nothing new to say.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from runestone_server.audit.models import AuditChain
from runestone_server.audit.verify import verify_stored
from runestone_server.db import Database
from runestone_server.models import Runtime
from runestone_server.worker import task

CHAINS_PER_TICK = 20
TICK_BUDGET = 1.0  # seconds of walking per tick, after the first chain


def reverify_period() -> timedelta | None:
    """How often each chain is re-walked; None when the task is off."""
    seconds = float(os.environ.get("RUNESTONE_AUDIT_REVERIFY_EVERY", "21600"))
    return timedelta(seconds=seconds) if seconds > 0 else None


def _due(period: timedelta, now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Not broken, and not walked within the period."""
    return (AuditChain.status != "broken",
            or_(AuditChain.reverified.is_(None), AuditChain.reverified <= now - period))


def claim(db: Session, chain_id: int, period: timedelta, now: datetime) -> bool:
    """Take this chain's walk for this period; False if another replica has."""
    claimed = db.execute(update(AuditChain).where(AuditChain.id == chain_id,
                                                  *_due(period, now))
                         .values(reverified=now)).rowcount
    db.commit()
    return bool(claimed)


def reverify_chains(db: Session, now: datetime | None = None,
                    limit: int = CHAINS_PER_TICK) -> list[str]:
    """Walk up to `limit` due chains, longest unverified first; the runtime ids walked."""
    period = reverify_period()
    if period is None:
        return []
    now = now or datetime.now(UTC)
    due = db.execute(select(AuditChain.id, AuditChain.runtime_ref).where(*_due(period, now))
                     .order_by(AuditChain.reverified.is_not(None), AuditChain.reverified,
                               AuditChain.id).limit(limit)).all()
    walked: list[str] = []
    started = time.monotonic()
    for chain_id, runtime_ref in due:
        if walked and time.monotonic() - started > TICK_BUDGET:
            break  # the other tasks (escalations, notifications) share this tick
        if not claim(db, chain_id, period, now):
            continue
        runtime = db.get(Runtime, runtime_ref)
        if runtime is not None:
            verify_stored(db, runtime, found_by="worker")
            walked.append(runtime.runtime_id)
    return walked


@task("audit.reverify")
def reverify_due(database: Database) -> None:
    """Worker task: re-walk the chains that are due."""
    with database.sessions() as db:
        reverify_chains(db)
