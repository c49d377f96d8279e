"""Schema changes only through Alembic: `upgrade` brings any database to the models.

Each domain's migrations are a branch from the initial schema (down_revision "0001"), so
domains evolve independently; `upgrade` goes to every head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from runestone_server.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def known_revisions() -> set[str]:
    """Every migration revision this code has (a database naming another is newer)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return {revision.revision for revision in script.walk_revisions()}


def upgrade(db: Database) -> None:
    config = alembic_config(db.url)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")
