"""The FastAPI application: the API routers over one Database and the server's key."""

from __future__ import annotations

from fastapi import FastAPI

from runestone_server.api import identity, policies, runtimes
from runestone_server.db import Database, data_dir
from runestone_server.security import ServerKey


def create_app(database_url: str, key_path: str | None = None) -> FastAPI:
    app = FastAPI(title="runestone-server", version="0.1.0",
                  description="The Runestone control plane: policies, runtimes, teams.")
    app.state.db = Database(database_url)
    from pathlib import Path

    app.state.key = ServerKey(Path(key_path) if key_path else
                              data_dir() / "keys" / "server.ed25519")
    for module in (identity, runtimes, policies):
        app.include_router(module.router)

    @app.get("/healthz")
    def health() -> dict[str, bool]:
        return {"ok": True}

    return app
