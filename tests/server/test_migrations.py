"""The migrations produce exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from runestone_server.audit.fulltext import include_name
from runestone_server.db import Database
from runestone_server.migrate import upgrade
from runestone_server.schema import metadata


# SQLite cannot reflect expression indexes; this one (audit story, migration 0103) is
# skipped by name anyway.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based "
                            "index ix_server_events_request_id")
def test_migrations_match_the_models(database_url):
    db = Database(database_url)
    upgrade(db)
    upgrade(db)  # idempotent
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(
            # The audit full-text objects (FTS5 tables, a GIN expression index) are
            # created by migration 0102 but are not models: skipped by name only.
            connection, opts={"include_name": include_name}), metadata)
    db.engine.dispose()
    assert differences == []


def test_the_outbox_migration_keeps_the_first_of_duplicate_dedup_keys(database_url):
    """Before 0302 a dedup key was checked by a look before the insert, which concurrent
    enqueues both passed: the duplicates that left must not stop the unique constraint."""
    from alembic import command
    from sqlalchemy import text

    from runestone_server.migrate import alembic_config

    db = Database(database_url)
    config = alembic_config(db.url)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0301_notify")
    with db.engine.begin() as connection:
        connection.execute(text("INSERT INTO organisations (id, name, created) "
                                "VALUES (1, 'acme', CURRENT_TIMESTAMP)"))
        connection.execute(text(
            "INSERT INTO notification_channels (id, org_id, name, kind, target, secret, "
            "created) VALUES (1, 1, 'c', 'webhook', 'https://hooks.example/x', '', "
            "CURRENT_TIMESTAMP)"))
        for key in ("k", "k", "other", None, None):
            connection.execute(text(
                "INSERT INTO notification_deliveries (org_id, channel_id, subject, payload, "
                "dedup_key, status, attempts, next_attempt, created) VALUES (1, 1, 's', "
                "'{}', :key, 'pending', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                {"key": key})
    upgrade(db)
    with db.engine.connect() as connection:
        kept = connection.execute(text(
            "SELECT id, dedup_key FROM notification_deliveries ORDER BY id")).all()
    db.engine.dispose()
    assert [tuple(row) for row in kept] == [(1, "k"), (3, "other"), (4, None), (5, None)]


def test_the_purpose_migration_reindexes_what_was_indexed_before(database_url):
    """0802 changes the text document (the agent's stated purpose is added): rows indexed
    under the old document are found by the new one, and deleting them afterwards (SQLite's
    contentless index must be told the very text it indexed) leaves nothing behind."""
    from alembic import command
    from sqlalchemy import delete, insert, select, text

    from runestone_server.audit import fulltext
    from runestone_server.audit.models import AuditEntry
    from runestone_server.migrate import alembic_config
    from runestone_server.models import Organisation, Runtime, Team

    db = Database(database_url)
    config = alembic_config(db.url)
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    heads = [h for h in script.get_heads()  # those not built on 0802
             if "0802_audit_purpose_search" not in
             {r.revision for r in script.iterate_revisions(h, "base")}]
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        for head in heads:  # everything but 0802: the document as it was
            command.upgrade(config, head)
    with db.sessions() as session:
        org = Organisation(name="o")
        session.add(org)
        session.flush()
        team = Team(org_id=org.id, name="t")
        session.add(team)
        session.flush()
        session.add(Runtime(org_id=org.id, team_id=team.id, runtime_id="rt_00", labels={},
                            public_key="0" * 64, credential_hash="0" * 64))
        session.flush()
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        session.execute(insert(AuditEntry), [{
            "org_id": org.id, "team_id": team.id, "runtime_id": "rt_00", "seq": 1,
            "kind": "request", "time": now, "received": now, "tool": "Bash",
            "summary": "openssl x509", "hash": "a" * 64,
            "entry": {"kind": "request", "purpose": "Rotate the staging certificates"}}])
        session.commit()
    fulltext.catch_up(db.engine)  # indexed under the old document
    upgrade(db)
    fulltext.catch_up(db.engine)
    with db.sessions() as session:
        def found(words: str) -> list[int]:
            return list(session.scalars(select(AuditEntry.seq).where(
                fulltext.match(db.engine.dialect.name, words))))

        assert found("certificates") == [1] and found("openssl") == [1]
        session.execute(delete(AuditEntry))
        session.commit()
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM audit_entries_fts WHERE "
                                          "audit_entries_fts MATCH 'openssl'")) == 0
    db.engine.dispose()


def test_the_text_columns_migration_backfills_what_the_document_read(database_url):
    """1101 moves the entry's reason and purpose into columns the text document reads:
    existing rows get exactly what ingest derives (verification compares the two) and
    stay found by their reason and purpose; the repeated org index is gone; and the
    migration goes down and up again."""
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import insert, inspect, select, text

    from runestone_server.audit import fulltext
    from runestone_server.audit.ingest import document_fields
    from runestone_server.audit.models import AuditEntry
    from runestone_server.migrate import alembic_config
    from runestone_server.models import Organisation, Runtime, Team

    db = Database(database_url)
    config = alembic_config(db.url)
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    # The audit branch stops before 1101 (1102, the approver index, follows it).
    later = ("1101_audit_text_columns", "1102_audit_approver_names")
    heads = [h if h not in later else "1001_json_text_nul" for h in script.get_heads()]
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        for head in heads:  # everything but 1101
            command.upgrade(config, head)
    entries = [
        {"reason": "Exfiltration risk"}, {"purpose": "Rotate the staging certificates"},
        {"reason": 4711, "purpose": False}, {"reason": ["caf\u00e9 ticket", {"n": 1.5}]},
        {"purpose": {"why": "backup nightly"}}, {"reason": "", "purpose": None},
        {"reason": "literal \\u0000 text"}, {"reason": "wombat", "in\x00put": 1}, {}]
    with db.sessions() as session:
        org = Organisation(name="o")
        session.add(org)
        session.flush()
        team = Team(org_id=org.id, name="t")
        session.add(team)
        session.flush()
        session.add(Runtime(org_id=org.id, team_id=team.id, runtime_id="rt_00", labels={},
                            public_key="0" * 64, credential_hash="0" * 64))
        session.flush()
        now = datetime.now(UTC)
        # The table as it was: no reason or purpose column to write.
        session.execute(insert(AuditEntry.__table__), [{
            "org_id": org.id, "team_id": team.id, "runtime_id": "rt_00", "seq": seq,
            "kind": "decision", "time": now, "received": now, "summary": f"echo {seq}",
            "hash": f"{seq:064x}", "entry": {"kind": "decision", **fields}}
            for seq, fields in enumerate(entries, start=1)])
        session.commit()
    fulltext.catch_up(db.engine)
    upgrade(db)
    fulltext.catch_up(db.engine)
    with db.sessions() as session:
        rows = session.execute(select(AuditEntry.seq, AuditEntry.entry, AuditEntry.reason,
                                      AuditEntry.purpose).order_by(AuditEntry.seq)).all()
        assert [(reason, purpose) for _, _, reason, purpose in rows] == [
            document_fields(entry) for _, entry, _, _ in rows]
        assert rows[2][2:] == ("4711", "false") and rows[7][2:] == (None, None)

        def found(words: str) -> list[int]:
            return list(session.scalars(select(AuditEntry.seq).where(
                fulltext.match(db.engine.dialect.name, words))))

        assert found("exfiltration") == [1] and found("certificates") == [2]
        assert found("4711") == [3] and found("ticket") == [4] and found("nightly") == [5]
        assert found("literal") == [7]
    names = {index["name"] for index in inspect(db.engine).get_indexes("audit_entries")}
    assert "ix_audit_entries_org_id" not in names and "ix_audit_entries_org_time" in names
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "1001_json_text_nul")
    columns = {column["name"] for column in inspect(db.engine).get_columns("audit_entries")}
    assert not {"reason", "purpose"} & columns
    upgrade(db)
    with db.sessions() as session:
        assert session.scalars(select(AuditEntry.reason).order_by(AuditEntry.seq)).first() \
            == "Exfiltration risk"
        if db.engine.dialect.name == "postgresql":
            assert session.scalar(text(
                f"SELECT count(*) FROM audit_entries WHERE {fulltext.PG_DOCUMENT} @@ "
                "to_tsquery('simple', 'nightly')")) == 1
    db.engine.dispose()


def test_the_approver_names_migration_goes_down_and_up(database_url):
    """1102 adds PostgreSQL's GIN index of the listed approvers (nothing on SQLite);
    downgrading to 1101 drops it and upgrading builds it again."""
    from alembic import command
    from sqlalchemy import inspect

    from runestone_server.audit.search_schema import PG_APPROVER_INDEX
    from runestone_server.migrate import alembic_config

    db = Database(database_url)
    upgrade(db)
    config = alembic_config(db.url)

    def indexed() -> bool:
        with db.engine.connect() as connection:
            names = {i["name"] for i in inspect(connection).get_indexes("audit_entries")}
        return PG_APPROVER_INDEX in names

    postgres = db.engine.dialect.name == "postgresql"
    assert indexed() == postgres
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "1101_audit_text_columns")
    assert not indexed()
    upgrade(db)
    assert indexed() == postgres
    db.engine.dispose()
