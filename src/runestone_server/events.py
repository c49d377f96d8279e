"""Every change on the server is itself an audit event."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from runestone_server.models import ServerEvent


def record(db: Session, org_id: int, team_id: int | None, actor: str, kind: str,
           detail: dict[str, Any]) -> None:
    db.add(ServerEvent(org_id=org_id, team_id=team_id, actor=actor, kind=kind, detail=detail))
