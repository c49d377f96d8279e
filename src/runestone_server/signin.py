"""Checking a password, for the API's login and the dashboard's alike.

One path for both, so neither can drift: a throttled attempt is refused before any
password is checked, an unknown organisation, user or a deactivated account costs the same
argon2 verification as a wrong password (a dummy hash), and each failure is counted
against the account and the client's address (throttle.py).
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone_server import throttle
from runestone_server.events import record
from runestone_server.models import Organisation, User
from runestone_server.security import check_password, hash_password

# A fixed hash to verify against when the user does not exist, so a wrong user name costs
# the same argon2 time as a wrong password and does not reveal which names exist.
_DUMMY_HASH = hash_password("runestone-no-such-user")


class Throttled(Exception):
    """Too many failed logins for this account or address; try again in `retry_after` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


def client_address(request: Request) -> str:
    """The peer's address (uvicorn puts a trusted proxy's X-Forwarded-For here only when
    RUNESTONE_SERVER_TRUST_PROXY=1)."""
    return request.client.host if request.client else "unknown"


def authenticate(db: Session, organisation: str, username: str, password: str) -> User | None:
    """The active user with this password, or None (same cost either way)."""
    user = db.scalar(select(User).join(Organisation, Organisation.id == User.org_id).where(
        Organisation.name == organisation, User.username == username))
    if user is None or not user.active:
        check_password(_DUMMY_HASH, password)
        return None
    return user if check_password(user.password_hash, password) else None


def sign_in(db: Session, organisation: str, username: str, password: str,
            address: str) -> User | None:
    """The user, or None for wrong credentials (counted); raises Throttled while the
    account or the address is blocked. Commits the count."""
    attempt = throttle.Attempt(organisation, username, address)
    wait = throttle.retry_after(db, attempt)
    if wait > 0:
        raise Throttled(wait)
    user = authenticate(db, organisation, username, password)
    if user is None:
        blocked = throttle.failed(db, attempt)
        if blocked:
            _record_block(db, attempt, blocked)
        db.commit()
        return None
    throttle.succeeded(db, attempt)
    db.commit()
    return user


def _record_block(db: Session, attempt: throttle.Attempt, kinds: list[str]) -> None:
    """A server event in the organisation named, when there is one. The user name is
    written only when it names a real user (a mistyped password stays out of the log)."""
    org = db.scalar(select(Organisation).where(Organisation.name == attempt.organisation))
    if org is None:
        return
    known = db.scalar(select(User.id).where(User.org_id == org.id,
                                            User.username == attempt.username))
    record(db, org.id, None, "server", "auth.login_throttled",
           {"blocked": kinds, "address": attempt.address,
            "username": attempt.username if known is not None else None,
            "failures_allowed": {"account": throttle.ACCOUNT_FREE,
                                 "address": throttle.ADDRESS_FREE}})
