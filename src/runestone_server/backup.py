"""`runestone-server backup FILE` and `restore FILE` for the SQLite default.

Both use SQLite's online backup API, page by page under SQLite's own locks, so a running
server needs no stop and never sees half a copy: a backup is a consistent snapshot of one
moment, and a restore replaces the live database in one write transaction (readers see the
old or the new database, never a mix). A backup is written to a temporary file beside the
target, checked (`PRAGMA integrity_check` and a Runestone schema), fsynced and renamed over
the target, so a crash leaves the previous backup or the new one, never a torn file. A
restore checks the file the same way first and refuses one that is not a Runestone
database, is damaged, or comes from a newer version of the server (its schema names
migrations this code does not know).

PostgreSQL is refused with the reason: its own `pg_dump`/`pg_restore` are the tools there.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from runestone_server.db import Database


class BackupError(RuntimeError):
    """The backup or restore was refused or failed; the message says why."""


def sqlite_path(url: str) -> Path:
    """The database file of a SQLite URL; refuses every other database."""
    if url.startswith(("postgresql", "postgres:")):
        raise BackupError("backup and restore are for the SQLite default; for PostgreSQL use "
                          "its own tools: `pg_dump --format=custom -f FILE URL` and "
                          "`pg_restore --clean -d URL FILE`")
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        raise BackupError(f"not a SQLite database file: {url}")
    return Path(url[len("sqlite:///"):])


def check(path: Path) -> list[str]:
    """The migration revisions of a sound Runestone database at `path`; BackupError when it
    is damaged, not a Runestone database, or from a newer server."""
    from runestone_server.migrate import known_revisions

    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: cannot open ({exc})") from exc
    try:
        verdict = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            raise BackupError(f"{path} is damaged: {'; '.join(verdict[:5])}")
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"alembic_version", "organisations", "users"} <= tables:
            raise BackupError(f"{path} is not a Runestone server database")
        revisions = [row[0] for row in connection.execute(
            "SELECT version_num FROM alembic_version")]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a usable SQLite database: {exc}") from exc
    finally:
        connection.close()
    unknown = set(revisions) - known_revisions()
    if unknown:
        raise BackupError(f"{path} comes from a newer server (migrations "
                          f"{', '.join(sorted(unknown))} are unknown to this version)")
    if not revisions:
        raise BackupError(f"{path} has no schema version")
    # An older backup is fine: `runestone-server migrate` (or `serve`) brings it up.
    return revisions


def _copy(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    with target:
        source.backup(target, pages=1024)


def backup(db: Database, destination: Path) -> int:
    """Write a checked snapshot of the live database to `destination` (replaced
    atomically); the size in bytes."""
    source_path = sqlite_path(db.url)
    if not source_path.exists():
        raise BackupError(f"there is no database at {source_path}")
    destination = destination.resolve()
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    temporary.unlink(missing_ok=True)
    source = sqlite3.connect(source_path, timeout=30)
    target = sqlite3.connect(temporary)
    try:
        _copy(source, target)
        # A self-contained file: no -wal beside it that a copy could leave behind.
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
        source.close()
    try:
        check(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(destination.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return destination.stat().st_size


def _has_data(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return False
    connection = sqlite3.connect(path, timeout=30)
    try:
        return connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'organisations'"
        ).fetchone() is not None and connection.execute(
            "SELECT 1 FROM organisations LIMIT 1").fetchone() is not None
    finally:
        connection.close()


def restore(db: Database, source_file: Path, *, force: bool = False) -> list[str]:
    """Replace the database with a checked backup; the backup's migration revisions. A
    database that holds organisations is replaced only with `force`."""
    target_path = sqlite_path(db.url)
    if not source_file.is_file():
        raise BackupError(f"no backup file at {source_file}")
    revisions = check(source_file)
    if _has_data(target_path) and not force:
        raise BackupError(f"{target_path} holds data; restoring replaces all of it: add "
                          "--force to do that")
    target_path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{source_file}?mode=ro", uri=True)
    target = sqlite3.connect(target_path, timeout=30)
    try:
        _copy(source, target)
    finally:
        target.close()
        source.close()
    check(target_path)
    return revisions
