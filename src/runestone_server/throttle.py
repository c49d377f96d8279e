"""Sign-in throttling: failed logins slow down the account tried and the address trying.

Why rows and not process memory: replicas share nothing else, and an attacker spreading
guesses over replicas (or waiting for a restart) must meet the same count. Why two keys:
per account stops guessing one person's password from many addresses; per address stops
one client trying a few passwords on every account.

A key may fail FREE times (5 for an account, 30 for an address) within FORGET of its last
failure; each further failure blocks it for a delay that doubles (2 s, 4 s, ... capped at
15 min) from that failure. While a key is blocked, a login naming it is answered 429 with
Retry-After, without checking the password, so the right password does not get through a
block either. A successful login clears its account's count (not its address's: one
account the attacker owns must not reset the address). Keys are stored as SHA-256 of what
was typed, since people type passwords into the user name field.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Integer, String, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from runestone_server.models import Base, aware

ACCOUNT_FREE = 5
ADDRESS_FREE = 30
FIRST_DELAY = 2.0  # seconds, doubled at each further failure
MAX_DELAY = 15 * 60.0
FORGET = timedelta(hours=1)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


# What "now" is; tests move it instead of sleeping (behaviour, not timing).
clock: Callable[[], datetime] = _wall_clock


class LoginFailures(Base):
    """Failed logins of one key (an account or an address) since it was last forgiven."""

    __tablename__ = "login_failures"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True, slots=True)
class Attempt:
    """Who is trying: the account named and the client's address."""

    organisation: str
    username: str
    address: str

    def keys(self) -> dict[str, tuple[str, int]]:
        """kind -> (stored key, failures allowed before blocking)."""
        account = f"account\0{self.organisation}\0{self.username}"
        return {"account": (_digest(account), ACCOUNT_FREE),
                "address": (_digest(f"address\0{self.address}"), ADDRESS_FREE)}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def delay(failures: int, free: int) -> float:
    """Seconds a key with `failures` is blocked after its last failure (0: not blocked)."""
    over = failures - free
    if over <= 0:
        return 0.0
    return min(MAX_DELAY, FIRST_DELAY * 2.0 ** min(over - 1, 30))


def _blocked_for(row: LoginFailures | None, free: int, now: datetime) -> float:
    if row is None:
        return 0.0
    last = aware(row.last_failure)
    if now - last >= FORGET:
        return 0.0
    until = last + timedelta(seconds=delay(row.failures, free))
    return max(0.0, (until - now).total_seconds())


def retry_after(db: Session, attempt: Attempt, now: datetime | None = None) -> int:
    """Whole seconds until this attempt may be tried (0: it may be tried now)."""
    now = now or clock()
    longest = 0.0
    for key, free in attempt.keys().values():
        longest = max(longest, _blocked_for(db.get(LoginFailures, key), free, now))
    return math.ceil(longest)


def failed(db: Session, attempt: Attempt, now: datetime | None = None) -> list[str]:
    """Count a failed login against both keys (atomically, so parallel guesses each count);
    the kinds ("account", "address") that this failure blocked. The caller commits."""
    now = now or clock()
    newly: list[str] = []
    for kind, (key, free) in attempt.keys().items():
        _insert_if_missing(db, key, now - FORGET - timedelta(seconds=1))
        forgotten = LoginFailures.last_failure < now - FORGET
        db.execute(update(LoginFailures).where(LoginFailures.key == key).values(
            failures=case((forgotten, 1), else_=LoginFailures.failures + 1),
            last_failure=now))
        count = db.scalar(select(LoginFailures.failures).where(LoginFailures.key == key))
        if count == free + 1:
            newly.append(kind)
    return newly


def succeeded(db: Session, attempt: Attempt) -> None:
    """The account's count starts over; the address keeps its own. The caller commits."""
    key, _free = attempt.keys()["account"]
    db.execute(delete(LoginFailures).where(LoginFailures.key == key))


def _insert_if_missing(db: Session, key: str, long_ago: datetime) -> None:
    name = db.get_bind().dialect.name
    if name == "postgresql":
        statement = postgresql.insert(LoginFailures)
    elif name == "sqlite":
        statement = sqlite.insert(LoginFailures)
    else:
        raise RuntimeError(f"login throttling needs SQLite or PostgreSQL, not {name}")
    db.execute(statement.values(key=key, failures=0, last_failure=long_ago)
               .on_conflict_do_nothing(index_elements=["key"]))
