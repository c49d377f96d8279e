"""A revoked runtime's open asks are cancelled: nobody should approve, and nobody be asked
to, for a machine the team no longer trusts. Each cancellation is a step of the request's
timeline (`approval.cancelled`, with the revocation's reason).

The revocation runs `cancel_open_asks` as soon as it is committed; the worker task sweeps
up whatever that left (a replica that stopped in between, a hook that failed), so every
open ask of a revoked runtime ends cancelled.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone_server.approvals.models import ApprovalRequest
from runestone_server.approvals.service import decide
from runestone_server.db import Database
from runestone_server.models import Runtime
from runestone_server.revocation import on_revoked
from runestone_server.worker import task

BATCH = 100


def _reason(runtime: Runtime) -> str:
    why = (runtime.revoked_reason or "").strip()
    return f"the runtime was revoked: {why}" if why else "the runtime was revoked"


@on_revoked("approvals.cancel_open_asks")
def cancel_open_asks(db: Session, runtime: Runtime, actor: str) -> int:
    """Cancel every pending ask of `runtime`; how many this call cancelled (an ask decided
    meanwhile by a vote or an escalation is left as it was decided)."""
    pending = list(db.scalars(select(ApprovalRequest).where(
        ApprovalRequest.runtime_pk == runtime.id, ApprovalRequest.state == "pending")
        .order_by(ApprovalRequest.id)))
    reason = _reason(runtime)
    return sum(decide(db, approval, "cancelled", reason, actor, kind="approval.cancelled")
               for approval in pending)


@task("approvals.revoked_runtimes")
def sweep(database: Database) -> int:
    """Cancel the open asks of runtimes already revoked; how many this replica cancelled."""
    with database.sessions() as db:
        waiting = select(ApprovalRequest.runtime_pk).where(ApprovalRequest.state == "pending")
        runtimes = list(db.scalars(select(Runtime).where(
            Runtime.revoked.is_not(None), Runtime.id.in_(waiting)).limit(BATCH)))
        return sum(cancel_open_asks(db, runtime, "server") for runtime in runtimes)
