"""Votes that were recorded but never settled are settled by the worker.

`service.vote` commits the vote, then settles the request in a transaction of its own. A
server killed between the two left a pending request holding the vote that decides it, and
its voter, told "already voted", could not decide it again. Every tick this task looks for
pending requests with a vote at their current level and settles them as `vote` would have;
`settle` is idempotent (a conditional UPDATE on the pending state and level), so replicas
and a vote settling at the same moment decide each request once.
"""

from __future__ import annotations

from sqlalchemy import select

from runestone_server.approvals.models import ApprovalRequest, ApprovalVote
from runestone_server.approvals.service import settle
from runestone_server.db import Database
from runestone_server.worker import task

BATCH = 100


@task("approvals.settle")
def settle_unsettled(database: Database) -> int:
    """Settle pending requests that have votes at their current level; how many decided."""
    with database.sessions() as db:
        pending = list(db.scalars(select(ApprovalRequest.id).where(
            ApprovalRequest.state == "pending",
            select(ApprovalVote.id).where(ApprovalVote.approval_id == ApprovalRequest.id,
                                          ApprovalVote.level == ApprovalRequest.level)
            .exists()).order_by(ApprovalRequest.id).limit(BATCH)))
    decided = 0
    for approval_id in pending:
        with database.sessions() as db:
            decided += settle(db, approval_id, actor="server") is not None
    return decided
