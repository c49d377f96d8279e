"""The worker task that keeps the usage and ask roll-ups current from the ingested audit.

A decision entry is counted once, on its UTC day, under the agent and tool of its request
entry (the decision entry itself carries no agent): `decisions` every decision, `asks` a
decision of ask, `approvals` an allow a human approved or granted, `denies` a deny,
`limit_hits` a decision one of the policy's limits made (a `limit:ID` rule). An ask is also
counted under its first rule and the program it runs (read by the runtime's own shell
analysis from the request's input; empty for a tool that runs no program).

As web/rollup.py, it moves past the stored entries with `audit.watermark`, which says why
each entry is counted once, even by racing replicas.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from runestone_server.audit import watermark
from runestone_server.audit.models import AuditEntry
from runestone_server.db import Database
from runestone_server.govern.models import COUNTS, AskDay, UsageDay, UsageMark
from runestone_server.worker import task

BATCH = 5_000
BATCHES_PER_TICK = 10
UsageKey = tuple[int, int, date, str, str]
AskKey = tuple[int, int, date, str, str]


def _insert(db: Session):
    if db.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _upsert(db: Session, table: Any, keys: tuple[str, ...], rows: list[dict[str, Any]],
            counted: tuple[str, ...]) -> None:
    insert = _insert(db)
    for start in range(0, len(rows), 500):
        statement = insert(table).values(rows[start:start + 500])
        db.execute(statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: table.c[name] + statement.excluded[name] for name in counted}))


def program_of(request: dict[str, Any]) -> str:
    """The program(s) an asked request runs, as the runtime reads them ("" for none)."""
    from runestone.actions import Action, ActionError
    from runestone.facts import derive_facts

    data = request.get("input")
    if not isinstance(data, dict):
        return ""
    try:
        action = Action(str(request.get("tool", "")), data, str(request.get("cwd", "")))
        facts = derive_facts(action, home="/home/user")
    except (ActionError, ValueError, TypeError):
        return ""
    names = [p.command.name for p in facts.parts if p.command is not None and p.command.name]
    return " ".join(dict.fromkeys(names))[:200]


def _requests(db: Session, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """The request entries (runtime id, request id) -> entry, for a batch's decisions."""
    found: dict[tuple[str, str], dict] = {}
    pairs = sorted(wanted)
    for start in range(0, len(pairs), 200):
        chunk = pairs[start:start + 200]
        rows = db.execute(select(AuditEntry.runtime_id, AuditEntry.request_id,
                                 AuditEntry.entry).where(
            AuditEntry.kind == "request",
            AuditEntry.request_id.in_({r for _, r in chunk}),
            or_(*(and_(AuditEntry.runtime_id == t, AuditEntry.request_id == r)
                  for t, r in chunk))))
        for runtime_id, request_id, entry in rows:
            found[(runtime_id, request_id)] = entry if isinstance(entry, dict) else {}
    return found


def _human_approved(entry: dict[str, Any]) -> bool:
    approval = entry.get("approval")
    return entry.get("decision") == "allow" and isinstance(approval, dict) and \
        approval.get("state") in ("consumed", "granted")


def roll_up_once(db: Session, now: datetime | None = None) -> int:
    """Count one batch; the number of entries the watermark moved past (0: nothing new)."""
    found = watermark.next_batch(db, UsageMark, BATCH, now)
    if found is None:
        return 0
    start, upper = found
    decisions = list(db.execute(select(
        AuditEntry.org_id, AuditEntry.team_id, AuditEntry.runtime_id, AuditEntry.request_id,
        AuditEntry.time, AuditEntry.tool, AuditEntry.rule, AuditEntry.entry).where(
        AuditEntry.id > start, AuditEntry.id <= upper, AuditEntry.kind == "decision")))
    requests = _requests(db, {(row.runtime_id, row.request_id) for row in decisions
                              if row.request_id})
    usage: dict[UsageKey, Counter[str]] = {}
    asks: Counter[AskKey] = Counter()
    for row in decisions:
        entry = row.entry if isinstance(row.entry, dict) else {}
        request = requests.get((row.runtime_id, row.request_id or ""), {})
        moment = row.time if row.time.tzinfo else row.time.replace(tzinfo=UTC)
        day = moment.astimezone(UTC).date()
        agent = str(request.get("agent") or "")[:200]
        key = (row.org_id, row.team_id, day, agent, (row.tool or "")[:200])
        counts = usage.setdefault(key, Counter())
        counts["decisions"] += 1
        outcome = entry.get("decision")
        rules = entry.get("rules") if isinstance(entry.get("rules"), list) else []
        if outcome == "ask":
            counts["asks"] += 1
            asks[(row.org_id, row.team_id, day, (row.rule or "")[:200],
                  program_of(request))] += 1
        elif outcome == "deny":
            counts["denies"] += 1
        if _human_approved(entry):
            counts["approvals"] += 1
        if any(isinstance(r, str) and r.startswith("limit:") for r in rules):
            counts["limit_hits"] += 1
    if not watermark.advance(db, UsageMark, start, upper):
        return 0
    if usage:
        _upsert(db, UsageDay.__table__, ("org_id", "team_id", "day", "agent", "tool"),
                [{"org_id": o, "team_id": t, "day": d, "agent": a, "tool": tool,
                  **{name: counts.get(name, 0) for name in COUNTS}}
                 for (o, t, d, a, tool), counts in usage.items()], COUNTS)
    if asks:
        _upsert(db, AskDay.__table__, ("org_id", "team_id", "day", "rule", "program"),
                [{"org_id": o, "team_id": t, "day": d, "rule": r, "program": p, "count": n}
                 for (o, t, d, r, p), n in asks.items()], ("count",))
    db.commit()
    return upper - start


@task("govern.usage_rollup")
def roll_up(database: Database) -> None:
    for _ in range(BATCHES_PER_TICK):
        with database.sessions() as db:
            if not roll_up_once(db):
                return
