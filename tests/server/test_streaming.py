"""Audit streaming to real receivers: Debian's rsyslog (RFC 5424 over TCP and TLS) and an
OTLP/HTTP receiver process decoding the protobuf; failures and recovery recorded as events;
and 10,000 entries streamed to both across a receiver restart and a server kill -9, none
missing."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from stream_receivers import OtlpReceiver, Rsyslog, make_certificates
from test_audit_ingest import Rt

from liveserver import ServerProcess, api, enroll_runtime, free_port
from runestone_server.models import Organisation, ServerEvent, Team, utcnow

pytestmark = pytest.mark.skipif(
    shutil.which("rsyslogd") is None and not os.environ.get("RUNESTONE_TEST_OPS"),
    reason="Debian's rsyslog is not installed (.ci/run installs rsyslog and rsyslog-openssl)")


@pytest.fixture
def receivers(tmp_path):
    tls = make_certificates(tmp_path / "certs")
    syslog = Rsyslog(tmp_path / "rsyslog", free_port(), tls=tls)
    otlp = OtlpReceiver(tmp_path / "otlp", free_port())
    syslog.start()
    otlp.start()
    yield syslog, otlp, tls
    syslog.stop()
    otlp.kill()


def _configure(monkeypatch, syslog, otlp, tls) -> None:
    monkeypatch.setenv("RUNESTONE_STREAM_SYSLOG", f"tls://127.0.0.1:{syslog.port}")
    monkeypatch.setenv("RUNESTONE_STREAM_SYSLOG_CA", str(tls["ca"]))
    monkeypatch.setenv("RUNESTONE_STREAM_OTLP", f"http://127.0.0.1:{otlp.port}/v1/logs")


@pytest.fixture
def world(server, tmp_path, receivers, monkeypatch):
    syslog, otlp, tls = receivers
    _configure(monkeypatch, syslog, otlp, tls)
    app, client = server
    with app.state.db.sessions() as db:
        org = Organisation(name="stream-org")
        db.add(org)
        db.flush()
        team = Team(org_id=org.id, name="core")
        db.add(team)
        db.commit()
        runtime = Rt(app, tmp_path, "laptop", org.id, team.id)
    return app, client, runtime, syslog, otlp


def _ship(client, runtime) -> None:
    answer = client.post("/api/v1/runtime/audit", headers=runtime.auth,
                         json={"entries": runtime.entries()})
    assert answer.status_code == 200, answer.text


def _events(app, kind: str) -> list[ServerEvent]:
    with app.state.db.sessions() as db:
        return list(db.scalars(select(ServerEvent).where(ServerEvent.kind == kind)))


def test_entries_and_events_reach_rsyslog_over_tls_and_otlp(world):
    app, client, runtime, syslog, otlp = world
    from runestone_server.events import record
    from runestone_server.stream.deliver import deliver_task

    runtime.decide(10)
    _ship(client, runtime)
    with app.state.db.sessions() as db:
        org = db.scalar(select(Organisation.id).where(Organisation.name == "stream-org"))
        record(db, org, None, "user:alice", "team.created", {"name": "core"})
        db.commit()
    deliver_task(app.state.db)
    seqs = [e["seq"] for e in runtime.entries()]
    for receiver in (syslog, otlp):
        got = receiver.positions()
        assert sorted(s for r, s in got if r == runtime.runtime_id) == seqs
        assert any(r == "server" for r, _ in got)  # the server event
    lines = syslog.output.read_text().splitlines()
    assert any(line.startswith("runestone decision [runestone@32473 ") for line in lines)
    decision = next(r for r in otlp.records()
                    if r["attributes"].get("kind") == "decision")
    attributes = decision["attributes"]
    assert attributes["runestone.runtime"] == runtime.runtime_id
    assert attributes["runestone.org"] == "stream-org" and attributes["runestone.team"] == "core"
    assert attributes["tool"] == "Bash" and attributes["decision"] in ("allow", "deny")
    assert len(attributes["runestone.hash"]) == 64
    assert decision["service"]["service.name"] == "runestone-server"
    with app.state.db.sessions() as db:
        from runestone_server.stream.models import StreamOutbox

        assert db.scalar(select(func.count(StreamOutbox.id))) == 0


def test_a_failing_target_is_recorded_kept_and_recovers(world):
    app, client, runtime, syslog, otlp = world
    from runestone_server.stream.deliver import deliver_task
    from runestone_server.stream.models import StreamOutbox, StreamTarget

    syslog.stop()
    runtime.decide(3)
    _ship(client, runtime)
    deliver_task(app.state.db)
    # The healthy target is not held up, and it carries the stream.failed event too.
    assert len([p for p in otlp.positions() if p[0] == runtime.runtime_id]) == 6
    assert any(r["attributes"].get("kind") == "stream.failed" for r in otlp.records())
    failed = _events(app, "stream.failed")
    assert [e.detail["target"] for e in failed] == ["syslog"]
    with app.state.db.sessions() as db:
        waiting = db.scalar(select(func.count(StreamOutbox.id)).where(
            StreamOutbox.target == "syslog"))
        assert waiting >= 6  # the entries, and the stream.failed event itself
        assert db.get(StreamTarget, "syslog").status == "failing"
    deliver_task(app.state.db)  # backing off: no second event
    assert len(_events(app, "stream.failed")) == 1
    syslog.start()
    with app.state.db.sessions() as db:  # the back-off is over
        db.execute(update(StreamTarget).values(next_attempt=utcnow() - timedelta(seconds=1)))
        db.commit()
    deliver_task(app.state.db)
    assert [e.detail["target"] for e in _events(app, "stream.recovered")] == ["syslog"]
    got = {s for r, s in syslog.positions() if r == runtime.runtime_id}
    assert got == {e["seq"] for e in runtime.entries()}


def test_tls_to_a_receiver_whose_certificate_is_not_trusted_fails(world, tmp_path,
                                                                 monkeypatch):
    app, client, runtime, syslog, _otlp = world
    from runestone_server.stream.deliver import deliver_task

    other = make_certificates(tmp_path / "other-ca")
    monkeypatch.setenv("RUNESTONE_STREAM_SYSLOG_CA", str(other["ca"]))
    runtime.decide(1)
    _ship(client, runtime)
    deliver_task(app.state.db)
    assert syslog.positions() == []
    failed = _events(app, "stream.failed")
    assert "CERTIFICATE_VERIFY_FAILED" in failed[0].detail["error"]


ENTRIES = 10_000


def _write_entries(home, count: int) -> None:
    """`count` entries in the runtime's own audit log (request + decision pairs; the log
    adds its signed checkpoints)."""
    from runestone.audit.checkpoint import Signer
    from runestone.audit.log import AuditLog
    from runestone.home import Layout
    from runestone.identity import load_identity

    layout = Layout(config_dir=home, state_dir=home / "state")
    identity = load_identity(layout)
    log = AuditLog(layout.audit_dir, identity.runtime_id,
                   signer=Signer(layout.private_key_file))
    pairs = count // 2
    for start in range(0, pairs, 250):
        batch = []
        for n in range(start, min(pairs, start + 250)):
            batch += [{"kind": "request", "request_id": f"req_{n:024x}", "tool": "Bash",
                       "input": {"command": f"echo {n}"}, "summary": f"echo {n}"},
                      {"kind": "decision", "request_id": f"req_{n:024x}", "tool": "Bash",
                       "decision": "deny" if n % 7 == 0 else "allow", "rules": ["dev.echo"],
                       "severity": "low", "summary": f"echo {n}"}]
        log.append(batch)
    log.close()


def _ship_process(home, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runestone", "audit", "ship"],
                            env={**env, "RUNESTONE_HOME": str(home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stream_events(url: str, kind: str) -> set[str]:
    """The targets named by the server's events of `kind`, read from its database."""
    from runestone_server.db import Database

    db = Database(url)
    try:
        with db.sessions() as session:
            return {e.detail["target"] for e in session.scalars(
                select(ServerEvent).where(ServerEvent.kind == kind))}
    finally:
        db.engine.dispose()


def _until(predicate, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    assert predicate(), what


def test_ten_thousand_entries_across_a_receiver_restart_and_a_server_kill(
        database_url, tmp_path, receivers):
    syslog, otlp, tls = receivers
    chance = random.Random(19)
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'stream.sqlite3'}"
    server = ServerProcess(
        database_url, tmp_path / "server", RUNESTONE_SERVER_TICK="0.2",
        RUNESTONE_STREAM_BATCH="200", RUNESTONE_STREAM_LEASE="5",
        RUNESTONE_AUDIT_REVERIFY_EVERY="0",
        RUNESTONE_STREAM_SYSLOG=f"tls://127.0.0.1:{syslog.port}",
        RUNESTONE_STREAM_SYSLOG_CA=str(tls["ca"]),
        RUNESTONE_STREAM_OTLP=f"http://127.0.0.1:{otlp.port}/v1/logs")
    server.init()
    server.start()
    try:
        admin = server.login()
        team = api(server.base, "POST", "/api/v1/teams", admin, {"name": "core"})["id"]
        home = tmp_path / "laptop"
        assert enroll_runtime(server.base, admin, team, home).returncode == 0
        from runestone.home import Layout
        from runestone.identity import load_identity

        runtime_id = load_identity(Layout(config_dir=home, state_dir=home / "state")).runtime_id

        def received(receiver) -> set[int]:
            return {s for r, s in receiver.positions() if r == runtime_id}

        # Part of the entries shipped and streaming; then both receivers go down.
        _write_entries(home, 4000)
        assert _ship_process(home, server.env).wait(timeout=300) == 0
        _until(lambda: received(syslog) and received(otlp), 300, "the stream did not start")
        syslog.stop()
        otlp.kill()
        # The rest shipped while they are down, and the server killed (-9) in the middle
        # of that ingest (and of enqueueing the stream's rows).
        _write_entries(home, ENTRIES - 4000)
        shipping = _ship_process(home, server.env)
        time.sleep(chance.uniform(0.2, 1.5))
        server.process.kill()
        server.process.wait()
        shipping.wait(timeout=120)
        server.start()
        assert _ship_process(home, server.env).wait(timeout=300) == 0
        _until(lambda: _stream_events(database_url, "stream.failed") >= {"syslog", "otlp"},
               300, "the receivers' failure was not recorded")
        # The receivers come back; the server is killed again while it delivers.
        syslog.start()
        otlp.start()
        before = len(received(otlp))
        _until(lambda: len(received(otlp)) > before + 200, 300, "delivery did not resume")
        server.process.kill()
        server.process.wait()
        server.start()

        last = api(server.base, "GET", f"/api/v1/teams/{team}/audit/chains", admin)[0]
        assert last["last_seq"] >= ENTRIES  # every entry (and the checkpoints) stored
        expected = set(range(1, last["last_seq"] + 1))
        _until(lambda: received(syslog) >= expected and received(otlp) >= expected, 600,
               "entries are missing")
        for receiver in (syslog, otlp):
            got = [s for r, s in receiver.positions() if r == runtime_id]
            assert set(got) == expected  # none missing, nothing foreign
            print(f"{type(receiver).__name__}: {len(expected)} entries, "
                  f"{len(got) - len(expected)} resent")
        _until(lambda: _stream_events(database_url, "stream.recovered") >= {"syslog", "otlp"},
               300, "the recovery was not recorded")
    finally:
        server.stop()
