"""What is streamed: one `Record` per audit entry or server event, with its chain position.

An audit entry's position is its runtime's id and seq (with its hash and the previous
hash), so a receiver can drop a resend (same runtime and seq) and see a gap (a seq missing).
Server events have no hash chain; their position is `server` and the event's row id, which
only grows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone_server.audit.models import AuditEntry
from runestone_server.models import Organisation, ServerEvent, Team
from runestone_server.stream.models import StreamOutbox

SERVER = "server"


@dataclass(slots=True)
class Record:
    source: str  # audit | event
    runtime: str  # the runtime id, or "server" for an event
    seq: int
    kind: str
    time: datetime
    org: str
    team: str
    decision: str = ""
    hash: str = ""
    prev: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    def body(self) -> str:
        """The whole entry or event as compact JSON (sorted keys)."""
        return json.dumps(self.fields, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, default=str)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def load(db: Session, rows: list[StreamOutbox]) -> list[Record]:
    """The records of claimed outbox rows, in chain order; rows whose entry or event is gone
    (pruned by retention before it was sent) are skipped."""
    audit_ids = [r.ref for r in rows if r.source == "audit"]
    event_ids = [r.ref for r in rows if r.source == "event"]
    entries = list(db.scalars(select(AuditEntry).where(AuditEntry.id.in_(audit_ids)))) \
        if audit_ids else []
    events = list(db.scalars(select(ServerEvent).where(ServerEvent.id.in_(event_ids)))) \
        if event_ids else []
    orgs = dict(db.execute(select(Organisation.id, Organisation.name)).all())
    team_ids = {e.team_id for e in entries} | {e.team_id for e in events if e.team_id}
    teams = dict(db.execute(select(Team.id, Team.name).where(Team.id.in_(team_ids))).all()) \
        if team_ids else {}
    records = [Record("audit", e.runtime_id, e.seq, e.kind, _aware(e.time),
                      orgs.get(e.org_id, ""), teams.get(e.team_id, ""), e.decision or "",
                      e.hash, str(e.entry.get("prev") or ""), e.entry) for e in entries]
    records += [Record("event", SERVER, e.id, e.kind, _aware(e.created),
                       orgs.get(e.org_id, ""), teams.get(e.team_id, "") if e.team_id else "",
                       fields={"kind": e.kind, "actor": e.actor, "detail": e.detail,
                               "id": e.id, "time": _aware(e.created).isoformat()})
                for e in events]
    records.sort(key=lambda r: (r.runtime, r.seq))
    return records
