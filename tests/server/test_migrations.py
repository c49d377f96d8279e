"""The migrations produce exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from runestone_server.db import Database
from runestone_server.migrate import upgrade
from runestone_server.schema import metadata


def test_migrations_match_the_models(database_url):
    db = Database(database_url)
    upgrade(db)
    upgrade(db)  # idempotent
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    db.engine.dispose()
    assert differences == []
