"""Marking a runtime's chain broken, the same way whoever finds the problem: ingest (a batch
with a gap, fork, altered entry or bad checkpoint) or re-verification of what is stored
(an entry or checkpoint changed in the database, entries missing).

The chain keeps the *first* problem found: that is the one that broke it, and what the
chain list, the verify endpoint, the dashboard and the compliance report show. Later
problems do not replace it (a runtime retrying a refused batch, or a second tampered row,
must not hide the first), but each distinct one still raises an `audit.chain_problem` event
for the alerts. An event that would repeat the last one raised for the runtime is not
raised again, so a runtime retrying the same refused batch every round, or the verify page
being reloaded, alerts once.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone_server.audit.models import AuditChain
from runestone_server.events import record
from runestone_server.models import Runtime, ServerEvent

EVENT = "audit.chain_problem"


def _actor(runtime: Runtime) -> str:
    return f"runtime:{runtime.runtime_id}"


def _last_message(db: Session, runtime: Runtime) -> str | None:
    """The message of the last chain-problem event raised for this runtime, if any."""
    detail = db.scalar(select(ServerEvent.detail).where(
        ServerEvent.org_id == runtime.org_id, ServerEvent.kind == EVENT,
        ServerEvent.actor == _actor(runtime)).order_by(ServerEvent.id.desc()).limit(1))
    return str(detail.get("message")) if isinstance(detail, dict) else None


def mark_broken(db: Session, runtime: Runtime, chain: AuditChain, kind: str, seq: int,
                message: str, *, found_by: str) -> bool:
    """Mark the (locked) chain broken, keeping its first problem; raise the event unless it
    repeats the last one. True when an event was raised. The caller commits."""
    if chain.status != "broken" or not chain.problem:
        chain.status, chain.problem, chain.problem_seq = "broken", message, seq
    if _last_message(db, runtime) == message:
        return False
    record(db, runtime.org_id, runtime.team_id, _actor(runtime), EVENT,
           {"runtime_id": runtime.runtime_id, "problem": kind, "seq": seq,
            "message": message, "found_by": found_by})
    return True
