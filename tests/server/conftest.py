"""Every control-plane test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from RUNESTONE_TEST_POSTGRES (a server URL; `.ci/run` sets it and checks
the server answers). Without it those runs are skipped with that reason; with it, a server
that does not answer is an error, not a skip. Each test gets a database of its own.
"""

from __future__ import annotations

import os
import uuid

import pytest

pytest.importorskip("fastapi", reason="the [server] extra is not installed")

POSTGRES = os.environ.get("RUNESTONE_TEST_POSTGRES", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'server.sqlite3'}"
        return
    if not POSTGRES:
        pytest.skip("set RUNESTONE_TEST_POSTGRES=postgresql://user@host:port/db to run the "
                    "control-plane tests on PostgreSQL")
    import psycopg

    name = f"runestone_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def server(database_url, tmp_path):
    """The app on a fresh, migrated database, with a test client."""
    from fastapi.testclient import TestClient

    from runestone_server.app import create_app
    from runestone_server.migrate import upgrade

    app = create_app(database_url, key_path=str(tmp_path / "server.ed25519"))
    upgrade(app.state.db)
    with TestClient(app) as client:
        yield app, client
    app.state.db.engine.dispose()
