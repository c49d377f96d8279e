"""The worker task that empties the stream outbox into each configured target.

Per target and tick: claim the oldest rows (a conditional UPDATE sets a claim token and a
lease, so replicas never send the same row at once and a crashed sender's rows come back
when the lease ends), send them as one batch, and delete them only after the target took
the batch. A failure releases the rows and backs the target off (1 s doubling to 60 s); the
first failure records a `stream.failed` event and the first success after it a
`stream.recovered` event, in every organisation (each one's audit trail is affected).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runestone_server import metrics
from runestone_server.db import Database
from runestone_server.events import record
from runestone_server.models import Organisation, aware, utcnow
from runestone_server.stream import otlp, syslog, targets
from runestone_server.stream.models import StreamOutbox, StreamTarget
from runestone_server.stream.records import Record, load
from runestone_server.worker import task

log = logging.getLogger("runestone_server.stream")
BASE_DELAY, MAX_DELAY = 1.0, 60.0
TICK_BUDGET = 5.0  # seconds of sending per target and tick, so other tasks still run


def lease() -> float:
    return float(os.environ.get("RUNESTONE_STREAM_LEASE", max(60.0, 3 * targets.timeout())))


def _ensure_state(db: Database, name: str) -> StreamTarget:
    """The target's state row, made on first use (another replica may make it first)."""
    with db.sessions() as session:
        row = session.get(StreamTarget, name)
        if row is None:
            session.add(StreamTarget(name=name, status="ok", failures=0, delivered=0,
                                     updated=utcnow()))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
            row = session.get(StreamTarget, name)
        assert row is not None
        return row


def _state(session: Session, name: str) -> StreamTarget:
    row = session.get(StreamTarget, name)
    assert row is not None  # made by _ensure_state before any send
    return row


def claim(db: Database, name: str, size: int, now: datetime) -> tuple[str, list[StreamOutbox]]:
    """Claim up to `size` of the target's oldest free rows; (token, the rows claimed)."""
    token = secrets.token_hex(16)
    free = or_(StreamOutbox.claimed_until.is_(None), StreamOutbox.claimed_until < now)
    with db.sessions() as session:
        ids = list(session.scalars(select(StreamOutbox.id).where(
            StreamOutbox.target == name, free).order_by(StreamOutbox.id).limit(size)))
        if not ids:
            return token, []
        session.execute(update(StreamOutbox).where(StreamOutbox.id.in_(ids), free).values(
            claim=token, claimed_until=now + timedelta(seconds=lease())))
        session.commit()
        rows = list(session.scalars(select(StreamOutbox).where(StreamOutbox.claim == token)))
    return token, rows


def _send(target: targets.Target, records: list[Record]) -> None:
    if isinstance(target, targets.SyslogTarget):
        syslog.send(target, records, targets.timeout())
    else:
        otlp.send(target, records, targets.timeout())


def _event(session: Session, kind: str, detail: dict[str, object]) -> None:
    for org_id in session.scalars(select(Organisation.id)):
        record(session, org_id, None, "system:stream", kind, detail)


def _delivered(db: Database, name: str, token: str, count: int) -> None:
    with db.sessions() as session:
        session.execute(delete(StreamOutbox).where(StreamOutbox.claim == token))
        state = _state(session, name)
        if state.status == "failing":
            since = aware(state.failing_since)
            _event(session, "stream.recovered", {
                "target": name, "failed_seconds": round((utcnow() - since).total_seconds())
                if since else None, "last_error": state.last_error})
            log.warning("stream %s recovered", name)
        state.status, state.failures, state.next_attempt = "ok", 0, None
        state.failing_since, state.updated = None, utcnow()
        state.delivered = (state.delivered or 0) + count
        session.commit()
    metrics.STREAMED.labels(name, "delivered").inc(count)


def _failed(db: Database, name: str, token: str, error: str, count: int) -> None:
    now = utcnow()
    with db.sessions() as session:
        session.execute(update(StreamOutbox).where(StreamOutbox.claim == token).values(
            claim=None, claimed_until=None))
        state = _state(session, name)
        state.failures = (state.failures or 0) + 1
        state.next_attempt = now + timedelta(
            seconds=min(MAX_DELAY, BASE_DELAY * 2 ** (state.failures - 1)))
        state.last_error, state.updated = error[:1000], now
        if state.status != "failing":
            state.status, state.failing_since = "failing", now
            _event(session, "stream.failed", {"target": name, "error": error[:1000]})
            log.warning("stream %s failing: %s", name, error)
        session.commit()
    metrics.STREAMED.labels(name, "failed").inc(count)


def deliver(db: Database, target: targets.Target, *, budget: float = TICK_BUDGET) -> int:
    """Send what the target's outbox holds (within `budget` seconds); records delivered."""
    started, sent = time.monotonic(), 0
    waiting = aware(_ensure_state(db, target.name).next_attempt)
    if waiting is not None and waiting > utcnow():
        return 0
    while time.monotonic() - started < budget:
        token, rows = claim(db, target.name, targets.batch_size(), utcnow())
        if not rows:
            break
        with db.sessions() as session:
            records = load(session, rows)
        try:
            if records:
                _send(target, records)
        except OSError as exc:
            _failed(db, target.name, token, str(exc), len(records))
            break
        _delivered(db, target.name, token, len(records))
        sent += len(records)
    return sent


@task("stream.deliver")
def deliver_task(db: Database) -> None:
    for target in targets.configured():
        deliver(db, target)
