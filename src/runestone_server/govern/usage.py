"""A team's usage by agent x tool x day, from the roll-up (rollup.py): what the usage API
and page show. Figures lag ingest by a worker tick or two."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runestone_server.govern.models import COUNTS, AskDay, UsageDay

MAX_DAYS = 366


def window(today: date, days: int) -> list[date]:
    """The `days` UTC days ending today, oldest first."""
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def usage(db: Session, org_id: int, team_id: int, today: date, days: int) -> dict[str, Any]:
    """Rows (day, agent, tool, counts), totals, and the counts per day for the chart."""
    first = today - timedelta(days=days - 1)
    rows = db.execute(select(UsageDay).where(
        UsageDay.org_id == org_id, UsageDay.team_id == team_id, UsageDay.day >= first,
        UsageDay.day <= today).order_by(UsageDay.day, UsageDay.agent, UsageDay.tool)
    ).scalars().all()
    out = [{"day": str(r.day)[:10], "agent": r.agent, "tool": r.tool,
            **{name: int(getattr(r, name)) for name in COUNTS}} for r in rows]
    totals = {name: sum(r[name] for r in out) for name in COUNTS}
    per_day = {d.isoformat(): dict.fromkeys(COUNTS, 0) for d in window(today, days)}
    for r in out:
        for name in COUNTS:
            per_day[r["day"]][name] += r[name]
    return {"team_id": team_id, "since": first.isoformat(), "until": today.isoformat(),
            "days": days, "rows": out, "totals": totals,
            "per_day": [{"day": d, **c} for d, c in per_day.items()]}


def most_asked(db: Session, org_id: int, team_id: int, first: date, column: str,
               limit: int = 10) -> list[dict[str, Any]]:
    """The rules (or programs) asked most often since `first`."""
    field = getattr(AskDay, column)
    total = func.sum(AskDay.count).label("n")
    rows = db.execute(select(field, total).where(
        AskDay.org_id == org_id, AskDay.team_id == team_id, AskDay.day >= first)
        .group_by(field).order_by(total.desc(), field).limit(limit))
    return [{column: value or "", "asks": int(n)} for value, n in rows]
