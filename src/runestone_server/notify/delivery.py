"""The worker side of the outbox: claim what is due, send it, record the outcome.

Claiming is a conditional UPDATE on (id, status, attempts, next_attempt): of several
replicas reading the same due row only one matches, and the claim moves `next_attempt` a
lease into the future, so a replica that dies mid-send leaves the row to be retried after
the lease instead of lost. Sending happens outside any transaction.
"""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from runestone_server.db import Database
from runestone_server.events import record
from runestone_server.models import utcnow
from runestone_server.notify import settings
from runestone_server.notify.channels import SendError, sender
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


def _claim(db: Database, row: Delivery, now: datetime, lease: float) -> bool:
    with db.sessions() as session:
        claimed = session.execute(update(Delivery).where(
            Delivery.id == row.id, Delivery.status == "pending",
            Delivery.attempts == row.attempts, Delivery.next_attempt <= now,
        ).values(attempts=row.attempts + 1, next_attempt=now + timedelta(seconds=lease)))
        session.commit()
        return claimed.rowcount == 1


def _finish(db: Database, delivery_id: int, attempts: int, error: str | None,
            retry: settings.Retry, tick: datetime) -> None:
    now = max(tick, utcnow())
    with db.sessions() as session:
        row = session.get(Delivery, delivery_id)
        if row is None or row.status != "pending" or row.attempts != attempts:
            return  # deleted with its channel, or the lease ran out and another took it
        if error is None:
            row.status, row.delivered, row.last_error = "delivered", now, None
        elif attempts >= retry.max_attempts:
            row.status, row.last_error = "failed", error
            channel = session.get(Channel, row.channel_id)
            record(session, row.org_id, channel.team_id if channel else None,
                   "system:notify", "notify.failed",
                   {"delivery": row.id, "channel": row.channel_id, "subject": row.subject,
                    "attempts": attempts, "error": error[:500]})
            log.warning("delivery %s failed for good after %s attempts: %s", row.id,
                        attempts, error)
        else:
            row.last_error = error
            row.next_attempt = now + timedelta(seconds=backoff(attempts, retry))
        session.commit()


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
        if not _claim(db, row, now, retry.lease):
            return False
        channel = channels.get(row.channel_id)
        error: str | None = None
        try:
            if channel is None or channel.org_id != row.org_id:
                raise SendError("the channel no longer exists")
            sender(channel.kind)(channel, row, retry.timeout)
        except SendError as exc:
            error = str(exc)
        except Exception as exc:  # a bug in a sender must not stop the other deliveries
            log.exception("delivery %s: unexpected error", row.id)
            error = f"{type(exc).__name__}: {exc}"
        _finish(db, row.id, row.attempts + 1, error, retry, now)
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
    `next_attempt` is when they finished (the last claim), which the due index covers."""
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
