"""The worker side of the outbox: claim what is due, send it, record the outcome.

Each delivery is claimed when its sender starts on it, not when the tick began: a
conditional UPDATE on (id, status, attempts, next_attempt), so of several replicas
reading the same due row only one matches. The claim moves `next_attempt` a lease into
the future from that moment and writes a fresh `claim_token`. The lease outlasts the
longest possible attempt (`settings.Retry.send_limit`, which each sender keeps to), so no
other replica takes the row while its send can still be going on; a replica that dies
mid-send leaves the row to be retried after the lease instead of lost. The outcome is
written only where the token is still the one claimed: a sender that ran past its lease
(a stalled process) cannot overwrite what the replica that took over recorded. Sending
happens outside any transaction.
"""

from __future__ import annotations

import logging
import random
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from runestone_server import metrics
from runestone_server.db import Database
from runestone_server.events import record
from runestone_server.models import utcnow
from runestone_server.notify import settings
from runestone_server.notify.channels import Limits, SendError, clean, sender
from runestone_server.notify.models import Channel, Delivery
from runestone_server.worker import task

log = logging.getLogger("runestone_server.notify")
BATCH = 32
SENDERS = 8  # deliveries sent at once


def backoff(attempts: int, retry: settings.Retry, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after `attempts` failures: exponential, capped, with
    "equal jitter" (half fixed, half random) so that receivers recovering from an outage
    are not hit by every sender at once, while the wait still grows with each failure."""
    ceiling = min(retry.max_delay, retry.base_delay * 2 ** max(0, attempts - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def _claim(db: Database, row: Delivery, now: datetime, lease: float) -> str | None:
    """Claim `row` as read at `now`; its claim token, or None if another replica has it.
    The lease runs from the moment of the claim (the tick may have begun long before)."""
    token = secrets.token_hex(16)
    until = max(now, utcnow()) + timedelta(seconds=lease)
    with db.sessions() as session:
        claimed = session.execute(update(Delivery).where(
            Delivery.id == row.id, Delivery.status == "pending",
            Delivery.attempts == row.attempts, Delivery.next_attempt <= now,
        ).values(attempts=row.attempts + 1, next_attempt=until, claim_token=token))
        session.commit()
        return token if claimed.rowcount == 1 else None


def _finish(db: Database, delivery_id: int, token: str, attempts: int, error: str | None,
            retry: settings.Retry, tick: datetime) -> None:
    """Record the outcome of the attempt holding `token`, if the row is still its own."""
    now = max(tick, utcnow())
    values: dict[str, Any] = {"claim_token": None, "last_error": error}
    if error is None:
        values.update(status="delivered", delivered=now, next_attempt=now)
    elif attempts >= retry.max_attempts:
        values.update(status="failed", next_attempt=now)
    else:
        values.update(next_attempt=now + timedelta(seconds=backoff(attempts, retry)))
    with db.sessions() as session:
        written = session.execute(update(Delivery).where(
            Delivery.id == delivery_id, Delivery.status == "pending",
            Delivery.claim_token == token).values(**values))
        if written.rowcount != 1:
            # Deleted with its channel, or the lease ran out and another replica took it.
            session.rollback()
            return
        if values.get("status") == "failed":
            _record_failure(session, delivery_id, attempts, error or "")
        session.commit()


def _record_failure(session: Session, delivery_id: int, attempts: int, error: str) -> None:
    """The `notify.failed` event, for the alerts and the team's history."""
    row = session.get(Delivery, delivery_id)
    channel = session.get(Channel, row.channel_id)
    record(session, row.org_id, channel.team_id if channel else None, "system:notify",
           "notify.failed", {"delivery": row.id, "channel": row.channel_id,
                             "subject": row.subject, "attempts": attempts, "error": error})
    log.warning("delivery %s failed for good after %s attempts: %s", row.id, attempts, error)


def deliver_due(db: Database, *, now: datetime | None = None, limit: int = BATCH) -> int:
    """Send every delivery due at `now` (default: the clock); the number attempted."""
    now = now or utcnow()
    retry = settings.retry()
    with db.sessions() as session:
        due = list(session.scalars(select(Delivery).where(
            Delivery.status == "pending", Delivery.next_attempt <= now,
        ).order_by(Delivery.next_attempt, Delivery.id).limit(limit)))
        channels = {c.id: c for c in session.scalars(select(Channel).where(
            Channel.id.in_({d.channel_id for d in due})))}

    def attempt(row: Delivery) -> bool:
        token = _claim(db, row, now, retry.lease)
        if token is None:
            return False
        limits = Limits.starting_now(retry.timeout, retry.send_limit)
        channel = channels.get(row.channel_id)
        error: str | None = None
        try:
            if channel is None or channel.org_id != row.org_id:
                raise SendError("the channel no longer exists")
            sender(channel.kind)(channel, row, limits)
        except SendError as exc:
            error = clean(str(exc))
        except Exception as exc:  # a bug in a sender must not stop the other deliveries
            log.exception("delivery %s: unexpected error", row.id)
            error = clean(type(exc).__name__)
        _finish(db, row.id, token, row.attempts + 1, error, retry, now)
        outcome = "delivered" if error is None else (
            "failed" if row.attempts + 1 >= retry.max_attempts else "retry")
        metrics.NOTIFICATIONS.labels(channel.kind if channel else "unknown", outcome).inc()
        return True

    if len(due) <= 1:
        return sum(attempt(row) for row in due)
    # In parallel: one receiver that hangs until the timeout must not hold up the others,
    # nor the worker's other tasks (escalations, alerts) for a timeout per message.
    with ThreadPoolExecutor(max_workers=min(SENDERS, len(due)),
                            thread_name_prefix="runestone-notify") as pool:
        return sum(pool.map(attempt, due))


def prune(db: Database, *, now: datetime | None = None) -> int:
    """Delete deliveries finished (delivered or failed) more than keep_days ago. Their
    `next_attempt` is set to when they finished, and the due index covers it."""
    cutoff = (now or utcnow()) - timedelta(days=settings.keep_days())
    with db.sessions() as session:
        deleted = session.execute(delete(Delivery).where(
            Delivery.status.in_(("delivered", "failed")), Delivery.next_attempt < cutoff))
        session.commit()
        return deleted.rowcount


@task("notify.deliver")
def deliver_task(db: Database) -> None:
    deliver_due(db)


@task("notify.prune")
def prune_task(db: Database) -> None:
    prune(db)
