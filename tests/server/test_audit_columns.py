"""The columns an auditor reads are covered by verification, on SQLite and PostgreSQL.

Search, export, the story view and the compliance report read `audit_entries`' columns,
not the hashed entry. A column changed in the database alone (a deny made an allow, the
approver or the user renamed, the rule, summary, reason or purpose rewritten) must be found
by the verify endpoint and by the worker's re-walk, kept on the chain as broken, and raised
as `audit.chain_problem` for the alerts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from test_audit_ingest import Rt, post, problems, verify
from test_audit_ingest import world as world  # the fixture, shared

from runestone_server.audit.ingest import DERIVED
from runestone_server.audit.models import AuditEntry

FORGED = {"kind": "checkpoint", "request_id": "req_forged", "tool": "Read",
          "decision": "ask", "severity": "none", "rule": "dev.everything",
          "agent": "someone", "user": "mallory", "approver": "server:mallory",
          "summary": "nothing happened", "action_hash": "c" * 64, "policy_hash": "d" * 64,
          "time": datetime(2001, 1, 1, tzinfo=UTC), "reason": "a forged reason",
          "purpose": "a forged purpose"}


def _approved(rt: Rt) -> None:
    """A request, its deny, and an approval entry naming an approver (all columns set)."""
    rt.decide(2)
    rt.log.append([{"kind": "approval", "request_id": "req_0", "tool": "Bash",
                    "decision": "allow", "approver": "server:alice", "user": "ana",
                    "rules": ["dev.echo"], "summary": "echo 0", "agent": "claude",
                    "severity": "low", "action_hash": "a" * 64, "policy_hash": "b" * 64,
                    "reason": "approved by alice", "purpose": "print a number"}])


def _seq_of_approval(rt: Rt) -> int:
    return next(e["seq"] for e in rt.entries() if e["kind"] == "approval")


def test_every_column_an_auditor_reads_is_checked_against_the_hashed_entry(world, tmp_path):
    assert set(FORGED) == set(DERIVED)
    app, client, ids, tokens = world
    team = ids["a"][1]
    for number, column in enumerate(DERIVED):
        rt = Rt(app, tmp_path, f"rt{number}", *ids["a"])
        _approved(rt)
        assert post(client, rt, rt.entries()).status_code == 200
        assert verify(client, tokens, team)[rt.runtime_id]["status"] == "verified"
        seq = _seq_of_approval(rt)
        with app.state.db.sessions() as db:  # only the column; the entry is untouched
            changed = db.execute(update(AuditEntry).where(
                AuditEntry.runtime_id == rt.runtime_id, AuditEntry.seq == seq)
                .values({column: FORGED[column]})).rowcount
            db.commit()
        assert changed == 1
        found = verify(client, tokens, team)[rt.runtime_id]
        assert (found["status"], found["problem_seq"]) == ("broken", seq), column
        assert f"the stored column '{column}' does not match the hashed entry" in \
            found["problem"]
        raised = [p for p in problems(app) if p["runtime_id"] == rt.runtime_id]
        assert [(p["problem"], p["seq"]) for p in raised] == [("bad_hash", seq)]


@pytest.mark.parametrize("column", ["decision", "approver"])
def test_the_worker_finds_a_changed_column_by_itself(world, tmp_path, monkeypatch, column):
    from runestone_server.audit.reverify import reverify_chains

    app, client, ids, _tokens = world
    rt = Rt(app, tmp_path, "one", *ids["a"])
    _approved(rt)
    assert post(client, rt, rt.entries()).status_code == 200
    monkeypatch.setenv("RUNESTONE_AUDIT_REVERIFY_EVERY", "60")
    later = datetime.now(UTC) + timedelta(minutes=2)
    with app.state.db.sessions() as db:
        assert reverify_chains(db, later) == [rt.runtime_id]
    assert problems(app) == []
    seq = _seq_of_approval(rt)
    value = "deny" if column == "decision" else "server:bob"
    with app.state.db.sessions() as db:
        db.execute(update(AuditEntry).where(AuditEntry.runtime_id == rt.runtime_id,
                                            AuditEntry.seq == seq).values({column: value}))
        db.commit()
    with app.state.db.sessions() as db:
        assert reverify_chains(db, later + timedelta(minutes=2)) == [rt.runtime_id]
    [found] = problems(app)
    assert (found["problem"], found["seq"], found["found_by"]) == ("bad_hash", seq, "worker")
    assert column in found["message"]
    with app.state.db.sessions() as db:
        assert db.scalar(select(AuditEntry.entry).where(
            AuditEntry.runtime_id == rt.runtime_id, AuditEntry.seq == seq))[column] != value
