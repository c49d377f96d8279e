"""The outbox: other domains enqueue a notification inside their own transaction.

Enqueueing writes a row and nothing else, so the notification exists exactly when the
change that caused it was committed; the worker (`delivery`) sends it afterwards.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from runestone_server.models import utcnow
from runestone_server.notify.models import Channel, Delivery


class UnknownChannel(LookupError):
    """The channel does not exist in this team (deleted, or another team's or tenant's)."""


def enqueue(db: Session, *, org_id: int, team_id: int, channel_id: int, subject: str,
            text: str, link: str | None = None, data: dict[str, Any] | None = None,
            dedup_key: str | None = None) -> None:
    """Add a delivery of this message to the channel, in the caller's transaction (the
    caller commits). With `dedup_key`, a message already enqueued to the same channel under
    the same key is not enqueued again.

    Raises UnknownChannel for a channel that is not the team's: a team's asks and alerts
    (commands, paths, who asked) never reach another team's or tenant's receiver, even
    through an id a group kept after its channel was deleted and SQLite gave to a new one."""
    channel = db.scalar(select(Channel).where(Channel.id == channel_id,
                                              Channel.org_id == org_id,
                                              Channel.team_id == team_id))
    if channel is None:
        raise UnknownChannel(f"no notification channel {channel_id} in this team")
    now = utcnow()
    _insert_unless_duplicate(db, {
        "org_id": org_id, "channel_id": channel.id, "subject": subject[:500],
        "payload": {"subject": subject, "text": text, "link": link, "data": data or {}},
        "dedup_key": dedup_key, "status": "pending", "attempts": 0, "next_attempt": now,
        "created": now})


def _insert_unless_duplicate(db: Session, values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT (channel_id, dedup_key) DO NOTHING, which SQLite and
    PostgreSQL both have: a concurrent enqueue of the same key waits for the first
    transaction and then inserts nothing, where a look before the insert would see nothing
    and insert a duplicate."""
    name = db.get_bind().dialect.name
    if name == "postgresql":
        statement = postgresql.insert(Delivery)
    elif name == "sqlite":
        statement = sqlite.insert(Delivery)
    else:
        raise RuntimeError(f"the outbox needs SQLite or PostgreSQL, not {name}")
    db.execute(statement.values(**values).on_conflict_do_nothing(
        index_elements=["channel_id", "dedup_key"]))
