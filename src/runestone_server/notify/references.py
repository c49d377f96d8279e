"""Who else keeps a channel's id: approver groups, the approval fallback and alert rules
name channels by id, in JSON lists a foreign key cannot guard.

Deleting a channel runs every registered `forget` in the same transaction, so no list keeps
an id that names nothing (and that SQLite, which reuses the highest row id, could later give
to a new channel). The outbox checks the team at every send as well; this keeps the
settings pages telling the truth. Notify knows no domain: each registers its own.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

Forget = Callable[[Session, int, int, int], None]  # (db, org_id, team_id, channel_id)
HOLDERS: dict[str, Forget] = {}


def holds_channels(name: str) -> Callable[[Forget], Forget]:
    """Register `forget(db, org_id, team_id, channel_id)`: drop the id wherever the domain
    keeps it for that team. It runs inside the deleting transaction; it must not commit."""

    def register(function: Forget) -> Forget:
        HOLDERS[name] = function
        return function

    return register


def forget_channel(db: Session, org_id: int, team_id: int, channel_id: int) -> None:
    for forget in list(HOLDERS.values()):
        forget(db, org_id, team_id, channel_id)


def without(ids: list[int] | None, channel_id: int) -> list[int] | None:
    """The list without the id, or None when it does not hold it (nothing to write). Ids
    are stored as JSON, so they are compared as integers."""
    kept = [i for i in ids or [] if int(i) != channel_id]
    return kept if len(kept) != len(ids or []) else None
