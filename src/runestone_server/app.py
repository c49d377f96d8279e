"""The FastAPI application: the routers of every domain over one Database, the server's
key, and the periodic worker."""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from runestone_server import health, metrics
from runestone_server.api import identity, policies, runtimes, simulation
from runestone_server.bodylimit import BodyLimit, document_body_limits
from runestone_server.db import Database, data_dir
from runestone_server.security import ServerKey
from runestone_server.strictjson import StrictJSON

# Each domain module exposes `router` (an APIRouter); importing one also registers its
# worker tasks. A module that does not exist yet is skipped.
DOMAIN_ROUTERS = (
    "runestone_server.audit.api",
    "runestone_server.audit.search_api",
    "runestone_server.approvals.api",
    "runestone_server.notify.api",
    "runestone_server.alerts.api",
    "runestone_server.govern.api",
    "runestone_server.govern.grants_api",
    "runestone_server.web.pages",
    "runestone_server.sso.api",
    "runestone_server.sso.web",
)


def domain_routers() -> list[object]:
    routers = []
    for name in DOMAIN_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        routers.append(module.router)
    return routers


def create_app(database_url: str, key_path: str | None = None, *,
               worker_interval: float | None = None) -> FastAPI:
    """`worker_interval` seconds between worker ticks (default $RUNESTONE_SERVER_TICK or 1);
    0 runs no worker (tests that drive `worker.run_once` themselves)."""
    from runestone_server.schema import load_all
    from runestone_server.worker import Worker

    load_all()
    database = Database(database_url)
    if worker_interval is None:
        worker_interval = float(os.environ.get("RUNESTONE_SERVER_TICK", "1"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = Worker(database, worker_interval) if worker_interval > 0 else None
        if worker:
            worker.start()
        try:
            yield
        finally:
            if worker:
                worker.stop()

    app = FastAPI(title="runestone-server", version="0.1.0", lifespan=lifespan,
                  description="The Runestone control plane: policies, runtimes, teams, "
                              "approvals, audit and alerts.")
    app.state.db = database
    app.add_middleware(StrictJSON)  # then read strictly (no NaN, lone surrogate, depth)
    app.add_middleware(BodyLimit)  # every body bounded before anything parses it
    # Replicas must sign with one key: give them the same file ($RUNESTONE_SERVER_KEY_FILE,
    # e.g. a mounted secret), or the same data directory.
    app.state.key = ServerKey(Path(key_path or os.environ.get("RUNESTONE_SERVER_KEY_FILE")
                                   or data_dir() / "keys" / "server.ed25519"))
    for module in (identity, runtimes, policies, simulation):
        app.include_router(module.router)
    for router in domain_routers():
        app.include_router(router)  # type: ignore[arg-type]
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.state.metrics = metrics.registry_for(database)
    app.add_middleware(metrics.RequestMetrics)
    document_body_limits(app)
    return app
