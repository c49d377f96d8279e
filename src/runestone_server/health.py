"""Liveness and readiness, for orchestrators and load balancers.

`/livez` answers while the process serves requests at all (restart it if not). `/readyz`
answers 200 only when this replica can do its work: the database answers and its schema is
at every migration head this code knows; otherwise 503 with the reason, so a rolling update
keeps traffic off a replica whose database is unreachable or not yet migrated. `/healthz`
stays as before (liveness) for existing probes.
"""

from __future__ import annotations

from functools import cache

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from runestone_server.db import Database

router = APIRouter(tags=["health"])


@cache
def code_heads() -> frozenset[str]:
    """The migration heads of this code (every domain's branch)."""
    from runestone_server.migrate import alembic_config

    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def readiness(db: Database) -> str:
    """'' when ready, else why not."""
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(connection).get_current_heads())
    except Exception as exc:  # any driver error means: not ready, say why
        return f"the database does not answer: {type(exc).__name__}: {str(exc)[:200]}"
    missing = code_heads() - current
    if missing:
        return (f"the database schema is not migrated (missing {', '.join(sorted(missing))}): "
                "run `runestone-server migrate`")
    return ""


@router.get("/livez")
@router.get("/healthz")
def live() -> dict[str, bool]:
    return {"ok": True}


@router.get("/readyz", responses={503: {"description": "not ready, with the reason"}})
def ready(request: Request) -> JSONResponse:
    reason = readiness(request.app.state.db)
    if reason:
        return JSONResponse({"ok": False, "reason": reason}, status_code=503)
    return JSONResponse({"ok": True})
