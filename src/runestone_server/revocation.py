"""Revoking a runtime: permanent, recorded, and enforced on every runtime-credential call.

A runtime whose machine or credential is compromised or retired is revoked by a manager of
its team. From then on:

- `auth.runtime_principal` refuses its credential (403 with who, when and why), so policy
  pull, audit shipping and approvals all refuse it in one place;
- endpoints that store what a runtime sends call `ensure_live` inside their own write
  transaction: a conditional UPDATE of the runtime's row that matches only while it is not
  revoked. It takes SQLite's write lock or PostgreSQL's row lock, so a revocation either
  commits before it (and the write is refused) or waits for the write to commit (and then
  sees, and cancels, what it stored). Nothing sent after the revocation is stored;
- the domains' hooks run (the approvals domain cancels the runtime's open asks);
- its runtime id is never enrolled again: the machine enrolls under a new identity with a
  new enrollment token, and gets a new credential. What it shipped before stays, under its
  old id, and still verifies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import HTTPException
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from runestone_server.events import record
from runestone_server.models import Runtime, aware, utcnow

if TYPE_CHECKING:
    from runestone_server.auth import Principal

log = logging.getLogger("runestone_server.revocation")
MAX_MESSAGE = 180  # the runtime shows the first 200 characters of a refusal
Hook = Callable[[Session, Runtime, str], None]
HOOKS: dict[str, Hook] = {}


def on_revoked(name: str) -> Callable[[Hook], Hook]:
    """Register what a domain does when a runtime is revoked: `hook(db, runtime, actor)`,
    run after the revocation is committed. The core knows no domain; a domain that is not
    installed registers nothing."""

    def register(function: Hook) -> Hook:
        HOOKS[name] = function
        return function

    return register


def refusal(runtime: Runtime | None) -> HTTPException:
    """The answer to a revoked runtime: what happened, so its user knows why (the runtime
    prints the server's words)."""
    if runtime is None or runtime.revoked is None:
        return HTTPException(403, "this runtime was revoked")
    when = aware(runtime.revoked)
    stamp = when.strftime("%Y-%m-%d %H:%M UTC") if when else "?"
    head = f"this runtime was revoked by {runtime.revoked_by or '?'} on {stamp}"
    tail = "; enroll again under a new identity"
    room = MAX_MESSAGE - len(head) - len(tail) - 2
    reason = " ".join((runtime.revoked_reason or "").split())
    if len(reason) > room:
        reason = reason[:max(room - 1, 0)] + "…"
    return HTTPException(403, f"{head}: {reason}{tail}" if reason else head + tail)


def ensure_live(db: Session, runtime_pk: int) -> None:
    """Inside a write transaction, before storing anything a runtime sent: lock its row
    while it is not revoked, or refuse (see the module's docstring for why a lock)."""
    locked = db.execute(update(Runtime).where(
        Runtime.id == runtime_pk, Runtime.revoked.is_(None)).values(revoked=None)
        .execution_options(synchronize_session=False)).rowcount
    if locked != 1:
        db.rollback()
        raise refusal(db.scalar(select(Runtime).where(Runtime.id == runtime_pk)
                                .execution_options(populate_existing=True)))


def revoke(db: Session, who: Principal, runtime: Runtime, reason: str) -> Runtime:
    """Revoke `runtime` (already scoped to the caller's team and role) for `reason`.
    Idempotent: revoking a revoked runtime changes nothing and returns it as it was, so a
    retry after a lost answer is safe and the first revocation's record stands."""
    if runtime.revoked is None:
        moved = db.execute(update(Runtime).where(
            Runtime.id == runtime.id, Runtime.revoked.is_(None)).values(
            revoked=utcnow(), revoked_by=who.user.username, revoked_reason=reason)
            .execution_options(synchronize_session=False)).rowcount
        if moved == 1:
            record(db, runtime.org_id, runtime.team_id, who.name, "runtime.revoked", {
                "runtime_id": runtime.runtime_id, "reason": reason,
                "labels": dict(runtime.labels or {})})
        db.commit()
        db.refresh(runtime)
        if moved == 1:
            _run_hooks(db, runtime, who.name)
    return runtime


def _run_hooks(db: Session, runtime: Runtime, actor: str) -> None:
    """Each hook contained: the revocation is committed and stands whatever a hook does,
    and the domains' workers finish what a failed hook left (see approvals/revoked.py)."""
    for name, hook in list(HOOKS.items()):
        try:
            hook(db, runtime, actor)
        except Exception:
            db.rollback()
            log.exception("runtime revocation hook %s failed for %s", name,
                          runtime.runtime_id)
