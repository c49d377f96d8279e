"""Operating the server: one documented table of settings (environment and file), health
probes, JSON logs, backup and restore of the SQLite default, and the worker on its own."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from liveserver import PASSWORD, ServerProcess, api, request
from runestone_server import config

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "runestone_server"
NAME = re.compile(r"RUNESTONE_[A-Z0-9_]*[A-Z0-9]")


def _read_in_code() -> set[str]:
    return {name for path in SOURCE.rglob("*.py") for name in NAME.findall(path.read_text())}


def test_every_variable_the_server_reads_is_in_the_table_and_the_doc():
    read = _read_in_code()
    assert read - set(config.SETTINGS) == set(), "read by the code, missing from SETTINGS"
    assert set(config.SETTINGS) - read == set(), "in SETTINGS, read nowhere"
    doc = (ROOT / "docs" / "operations.md").read_text()
    rows = set(re.findall(r"^\| `(RUNESTONE_[A-Z0-9_]+)` \| `([a-z0-9_]+)` \|", doc, re.M))
    assert rows == {(s.name, s.key) for s in config.SETTINGS.values()}


def test_the_file_sets_what_the_environment_does_not(tmp_path):
    path = tmp_path / "server.toml"
    path.write_text('server_public_url = "https://rs.example"\nserver_trust_proxy = true\n'
                    'notify_max_attempts = 3\nserver_tick = "5"\n')
    environ = {"RUNESTONE_SERVER_TICK": "0.5"}
    applied = config.apply(path, environ)
    assert environ == {"RUNESTONE_SERVER_TICK": "0.5",  # the environment wins
                       "RUNESTONE_SERVER_PUBLIC_URL": "https://rs.example",
                       "RUNESTONE_SERVER_TRUST_PROXY": "1",
                       "RUNESTONE_NOTIFY_MAX_ATTEMPTS": "3"}
    assert sorted(applied) == ["RUNESTONE_NOTIFY_MAX_ATTEMPTS", "RUNESTONE_SERVER_PUBLIC_URL",
                               "RUNESTONE_SERVER_TRUST_PROXY"]
    # Found through the variable as well as the argument.
    environ = {"RUNESTONE_SERVER_CONFIG": str(path)}
    config.apply(None, environ)
    assert environ["RUNESTONE_SERVER_TICK"] == "5"


@pytest.mark.parametrize("text, message", [
    ('server_databse = "sqlite:///x"\n', "unknown setting 'server_databse'"),
    ('server_config = "other.toml"\n', "unknown setting 'server_config'"),
    ("server_tick = [1, 2]\n", "expected a string, number or boolean"),
    ("server_tick = \n", "not valid TOML"),
])
def test_a_bad_file_stops_the_server_with_the_reason(tmp_path, text, message):
    path = tmp_path / "server.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.apply(path, {})
    done = subprocess.run([sys.executable, "-m", "runestone_server.cli", "--config", str(path),
                           "--database-url", f"sqlite:///{tmp_path / 'db.sqlite3'}", "migrate"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "db.sqlite3").exists()


def test_liveness_and_readiness(server):
    _app, client = server
    assert client.get("/livez").json() == {"ok": True}
    assert client.get("/healthz").json() == {"ok": True}
    assert client.get("/readyz").json() == {"ok": True}


def test_not_ready_before_migrations_and_without_a_database(database_url, tmp_path):
    from fastapi.testclient import TestClient

    from runestone_server.app import create_app

    app = create_app(database_url, key_path=str(tmp_path / "k"), worker_interval=0)
    with TestClient(app) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert "not migrated" in answer.json()["reason"]
        assert client.get("/livez").status_code == 200
    app.state.db.engine.dispose()
    gone = create_app("postgresql://postgres@127.0.0.1:1/none", key_path=str(tmp_path / "k"),
                      worker_interval=0)
    with TestClient(gone) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["reason"].startswith("the database does not answer")


def test_json_logs_from_the_server_and_uvicorn(tmp_path):
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = ServerProcess(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "home",
                               log=log, RUNESTONE_SERVER_LOG_FORMAT="json",
                               RUNESTONE_SERVER_LOG_LEVEL="info")
        server.init()
        server.start()
        try:
            assert request(server.base, "GET", "/readyz") == (200, {"ok": True})
            assert request(server.base, "GET", "/api/v1/teams")[0] == 401
        finally:
            server.stop()
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any("/readyz" in r["message"] and "200" in r["message"] for r in access)
    assert any("/api/v1/teams" in r["message"] and "401" in r["message"] for r in access)
    assert any(r["logger"] == "uvicorn.error" for r in records)  # startup lines


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "runestone_server.cli", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RUNESTONE_ADMIN_PASSWORD": PASSWORD, **(env or {})})


def _teams(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT name FROM teams ORDER BY name")]


def test_backup_and_restore_on_a_running_server(tmp_path):
    db_path = tmp_path / "home" / "runestone.sqlite3"
    url = f"sqlite:///{db_path}"
    server = ServerProcess(url, tmp_path / "home")
    server.init()
    server.start()
    try:
        admin = server.login()
        api(server.base, "POST", "/api/v1/teams", admin, {"name": "before"})
        backup = tmp_path / "backups" / "one.sqlite3"
        done = _cli("--database-url", url, "backup", str(backup))
        assert done.returncode == 0, done.stderr
        assert "integrity checked" in done.stdout
        api(server.base, "POST", "/api/v1/teams", admin, {"name": "after"})
        assert _teams(db_path) == ["after", "before"]
        assert _teams(backup) == ["before"]
        assert not list(backup.parent.glob(".*partial"))

        refused = _cli("--database-url", url, "restore", str(backup))
        assert refused.returncode == 1 and "--force" in refused.stderr
        done = _cli("--database-url", url, "restore", str(backup), "--force")
        assert done.returncode == 0, done.stderr
        # The running server reads the restored database at once: no restart.
        names = [t["name"] for t in api(server.base, "GET", "/api/v1/teams", admin)]
        assert names == ["before"]
        assert request(server.base, "GET", "/readyz") == (200, {"ok": True})
    finally:
        server.stop()


def test_restore_refuses_what_is_not_a_sound_runestone_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database at all" * 100)
    done = _cli("--database-url", url, "restore", str(garbage))
    assert done.returncode == 1 and "not a usable SQLite database" in done.stderr

    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    done = _cli("--database-url", url, "restore", str(other))
    assert done.returncode == 1 and "not a Runestone server database" in done.stderr

    assert _cli("--database-url", url, "init", "--organisation", "acme",
                "--admin", "alice").returncode == 0
    newer = tmp_path / "newer.sqlite3"
    assert _cli("--database-url", url, "backup", str(newer)).returncode == 0
    with sqlite3.connect(newer) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_future' "
                           "WHERE rowid = (SELECT min(rowid) FROM alembic_version)")
    done = _cli("--database-url", url, "restore", str(newer), "--force")
    assert done.returncode == 1 and "from a newer server" in done.stderr

    damaged = tmp_path / "damaged.sqlite3"
    assert _cli("--database-url", url, "backup", str(damaged)).returncode == 0
    data = bytearray(damaged.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data), page):  # every page's header after the schema
        data[offset:offset + 8] = b"\xff" * 8
    damaged.write_bytes(bytes(data))
    done = _cli("--database-url", url, "restore", str(damaged), "--force")
    assert done.returncode == 1
    assert "damaged" in done.stderr or "not a usable" in done.stderr
    assert _teams(tmp_path / "live.sqlite3") == []  # untouched: still the live database


def test_postgresql_is_refused_with_its_own_tools_named(tmp_path):
    done = _cli("--database-url", "postgresql://postgres@127.0.0.1:5432/x", "backup",
                str(tmp_path / "b"))
    assert done.returncode == 1 and "pg_dump" in done.stderr


def test_the_worker_runs_on_its_own_and_stops_on_sigterm(tmp_path):
    import os
    import signal

    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert _cli("--database-url", url, "migrate").returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "runestone_server.cli", "--database-url",
                                url, "worker"], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "RUNESTONE_SERVER_TICK": "0.2"})
    try:
        assert process.stdout is not None
        assert "worker running" in process.stdout.readline()
        time.sleep(0.5)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
