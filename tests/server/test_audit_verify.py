"""Re-verification of stored chains, on SQLite and PostgreSQL: every stored checkpoint record
is checked against the stored entries (not only the one retention kept), a problem found is
kept on the chain so every view says broken, a chain broken on ingest stays broken in the
verify report, and the first problem is the one shown.

Runtimes write real logs (real hashing, real Ed25519 checkpoints) and ship them through the
real API; "tampering" is a direct change to the server's database, which is what
re-verification exists to find.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from test_audit_ingest import PATH, Rt, post, problems, verify
from test_audit_ingest import world as world  # the fixture, shared

from runestone_server.audit.models import AuditChain, AuditCheckpoint


def _latest_record(rt: Rt) -> dict:
    """The runtime's `checkpoint.json`, as the shipper sends it beside each batch."""
    return json.loads((rt.layout.audit_dir / "checkpoint.json").read_text())


def _set_checkpoint(app, runtime_id: str, at: int, **values) -> None:
    """Change the stored checkpoint record at seq `at` in the server's database."""
    with app.state.db.sessions() as db:
        changed = db.execute(update(AuditCheckpoint).where(
            AuditCheckpoint.runtime_id == runtime_id, AuditCheckpoint.seq == at)
            .values(**values)).rowcount
        db.commit()
    assert changed == 1


def _chain(client, tokens, team_id: int, runtime_id: str) -> dict:
    answer = client.get(f"/api/v1/teams/{team_id}/audit/chains", headers=tokens["a"])
    return next(c for c in answer.json() if c["runtime_id"] == runtime_id)


def _report_chain(client, tokens, team_id: int, runtime_id: str) -> dict:
    answer = client.get(f"/api/v1/teams/{team_id}/audit/report", headers=tokens["a"])
    assert answer.status_code == 200, answer.text
    return next(c for c in answer.json()["chains"] if c["runtime_id"] == runtime_id)


def test_every_stored_checkpoint_is_checked_and_a_problem_found_is_kept(world, tmp_path):
    app, client, ids, tokens = world
    team = ids["a"][1]
    rt = Rt(app, tmp_path, "one", *ids["a"])
    rt.decide(12)
    entries = rt.entries()
    assert post(client, rt, entries).status_code == 200
    record = _latest_record(rt)
    # The standalone record arrives after the entries it covers, as the daemon sends it.
    assert post(client, rt, [], [record]).status_code == 200
    signed = [e["checkpoint"]["seq"] for e in entries if e["kind"] == "checkpoint"]
    assert len(signed) >= 3
    clean = verify(client, tokens, team)[rt.runtime_id]
    assert clean["ok"] and clean["checkpoints"] == len(signed)

    # A stored record changed to name another hash: the entries themselves are untouched,
    # so only checking every record against them finds it.
    middle = signed[1]
    _set_checkpoint(app, rt.runtime_id, middle, hash=entries[middle - 2]["hash"])
    found = verify(client, tokens, team)[rt.runtime_id]
    assert not found["ok"], found
    assert (found["status"], found["problem_seq"]) == ("broken", middle)
    assert found["problem"] == found["stored_problem"] == \
        f"the stored checkpoint at seq {middle} names another hash than the stored chain " \
        "has there"
    assert (clean["status"], clean["problem"]) == ("verified", "")  # as it was before
    # Kept on the chain: the chain list, the runtime's resume answer and the report agree.
    chain = _chain(client, tokens, team, rt.runtime_id)
    assert (chain["status"], chain["problem"], chain["problem_seq"]) == \
        ("broken", found["problem"], middle)
    assert client.get(PATH, headers=rt.auth).json()["status"] == "broken"
    reported = _report_chain(client, tokens, team, rt.runtime_id)
    assert reported["status"] == "broken" and not reported["intact"]
    assert reported["problem"] == found["problem"]
    assert verify(client, tokens, team)[rt.runtime_id] == found  # reloading: no new alarm
    assert problems(app) == [{"runtime_id": rt.runtime_id, "problem": "fork", "seq": middle,
                              "message": found["problem"], "found_by": "verification"}]

    # A second, earlier problem (a signature changed on the first record) is found and
    # raised, but the chain keeps the problem it broke with.
    first = signed[0]
    _set_checkpoint(app, rt.runtime_id, first, signature="00" * 64)
    later = verify(client, tokens, team)[rt.runtime_id]
    assert later["stored_problem"].startswith(f"the stored checkpoint at seq {first}: ")
    assert "signature does not verify" in later["stored_problem"]
    assert (later["problem"], later["problem_seq"]) == (found["problem"], middle)
    assert [(p["problem"], p["seq"]) for p in problems(app)] == \
        [("fork", middle), ("bad_signature", first)]


def test_a_checkpoint_beyond_the_head_or_not_the_chains_latest_is_found(world, tmp_path):
    app, client, ids, tokens = world
    team = ids["a"][1]
    rt = Rt(app, tmp_path, "one", *ids["a"])
    rt.decide(5)
    entries = rt.entries()
    assert post(client, rt, entries).status_code == 200
    with app.state.db.sessions() as db:
        chain = db.scalar(select(AuditChain).where(AuditChain.runtime_id == rt.runtime_id))
        latest = chain.checkpoint_seq
        chain.checkpoint_hash = "f" * 64  # the latest checkpoint shown is not a stored one
        db.commit()
    found = verify(client, tokens, team)[rt.runtime_id]
    assert not found["ok"], found
    assert found["status"] == "broken" and found["problem_seq"] == latest
    assert "latest checkpoint" in found["problem"]

    other = Rt(app, tmp_path, "two", *ids["a"])
    other.decide(5)
    assert post(client, other, other.entries()).status_code == 200
    record = _latest_record(other)
    head = other.entries()[-1]["seq"]
    _set_checkpoint(app, other.runtime_id, record["seq"], seq=head + 50)
    beyond = verify(client, tokens, team)[other.runtime_id]
    assert not beyond["ok"], beyond
    assert beyond["status"] == "broken" and beyond["problem_seq"] == head + 50
    assert "beyond the stored head" in beyond["problem"]


def test_a_batch_that_contradicts_a_stored_checkpoint_breaks_the_chain(world, tmp_path):
    """The runtime re-sends its latest signed checkpoint with each batch; the server has a
    record for that seq that was changed since: the batch is fine, the chain is not."""
    app, client, ids, tokens = world
    rt = Rt(app, tmp_path, "one", *ids["a"])
    rt.decide(6)
    entries = rt.entries()
    assert post(client, rt, entries).status_code == 200
    record = _latest_record(rt)
    _set_checkpoint(app, rt.runtime_id, record["seq"], hash=entries[0]["hash"])
    rt.decide(1)
    answer = post(client, rt, rt.entries()[len(entries):], [record])
    assert answer.status_code == 200, answer.text  # the runtime's entries are stored
    assert answer.json()["status"] == "broken" and answer.json()["problem"] is None
    chain = _chain(client, tokens, ids["a"][1], rt.runtime_id)
    assert chain["status"] == "broken" and chain["problem_seq"] == record["seq"]
    assert chain["last_seq"] == rt.entries()[-1]["seq"]
    assert [p["found_by"] for p in problems(app)] == ["ingest"]


def test_a_chain_broken_on_ingest_is_reported_broken_with_its_first_problem(world, tmp_path):
    app, client, ids, tokens = world
    team = ids["a"][1]
    rt = Rt(app, tmp_path, "one", *ids["a"])
    rt.decide(5)
    entries = rt.entries()
    tampered = [dict(e) for e in entries]
    tampered[7]["decision"] = "allow"  # seq 8 was a deny; its hash still says so
    refused = post(client, rt, tampered)
    assert refused.status_code == 409
    first = refused.json()["detail"]["problem"]
    # What was stored re-verifies, but the chain broke: the verify report says so.
    report = verify(client, tokens, team)[rt.runtime_id]
    assert not report["ok"], report
    assert (report["status"], report["stored_problem"]) == ("broken", "")
    assert (report["problem"], report["problem_seq"]) == (first["message"], 8)
    assert report["head_seq"] == 7

    # A later, different problem is raised, but does not replace the first.
    gap = post(client, rt, entries[9:])
    assert gap.json()["detail"]["problem"]["problem"] == "gap"
    assert [p["problem"] for p in problems(app)] == ["bad_hash", "gap"]
    assert post(client, rt, entries[7:]).status_code == 200  # the true history goes on
    chain = _chain(client, tokens, team, rt.runtime_id)
    assert (chain["status"], chain["problem"], chain["problem_seq"]) == \
        ("broken", first["message"], 8)
    resume = client.get(PATH, headers=rt.auth).json()
    assert resume["status"] == "broken" and resume["problem"] == {
        "message": first["message"], "seq": 8}
    again = verify(client, tokens, team)[rt.runtime_id]
    assert again["stored_problem"] == "" and again["head_seq"] == entries[-1]["seq"]
    assert (again["status"], again["problem"]) == ("broken", first["message"])
    assert _report_chain(client, tokens, team, rt.runtime_id)["problem"] == first["message"]


def test_retention_never_prunes_to_a_checkpoint_that_disagrees_with_the_chain(world,
                                                                            tmp_path):
    app, client, ids, tokens = world
    rt = Rt(app, tmp_path, "one", *ids["a"])
    rt.decide(10, when=datetime.now(UTC) - timedelta(days=90))
    rt.decide(3)
    entries = rt.entries()
    assert post(client, rt, entries).status_code == 200
    cutoff = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    old = [e["checkpoint"]["seq"] for e in entries
           if e["kind"] == "checkpoint" and entries[e["checkpoint"]["seq"] - 1]["time"] < cutoff]
    assert len(old) >= 2
    # The newest old enough record now names another hash than the chain at its seq.
    _set_checkpoint(app, rt.runtime_id, old[-1], hash=entries[0]["hash"])
    client.put("/api/v1/audit/retention", json={"days": 30}, headers=tokens["a"])
    pruned = client.post("/api/v1/audit/retention/prune", headers=tokens["a"])
    assert pruned.status_code == 200, pruned.text
    assert [r["through_seq"] for r in pruned.json()["runtimes"]] == [old[-2]]
    report = verify(client, tokens, ids["a"][1])[rt.runtime_id]
    assert report["start_seq"] == old[-2]
    assert report["status"] == "broken" and report["problem_seq"] == old[-1]


def test_the_worker_finds_a_row_changed_in_the_database_by_itself(world, tmp_path,
                                                                    monkeypatch):
    """Nobody opens the verify page: the worker's periodic walk finds the changed decision,
    keeps it on the chain and raises the event alert rules listen for. Each chain is walked
    once per period (the claim), broken chains are not walked again."""
    from runestone_server.audit import reverify
    from runestone_server.audit.models import AuditEntry
    from runestone_server.audit.reverify import reverify_chains, reverify_due

    app, client, ids, tokens = world
    team = ids["a"][1]
    one, two = (Rt(app, tmp_path, name, *ids["a"]) for name in ("one", "two"))
    for rt in (one, two):
        rt.decide(6)
        assert post(client, rt, rt.entries()).status_code == 200
    monkeypatch.setenv("RUNESTONE_AUDIT_REVERIFY_EVERY", "3600")
    start = datetime.now(UTC)
    with app.state.db.sessions() as db:
        assert reverify_chains(db, start) == []  # a new chain's period starts at creation
        start += timedelta(hours=1, seconds=1)
        # No time left in the tick after the first chain: the second waits for the next.
        budget = reverify.TICK_BUDGET
        monkeypatch.setattr(reverify, "TICK_BUDGET", 0.0)
        first = reverify_chains(db, start)
        second = reverify_chains(db, start)
        monkeypatch.setattr(reverify, "TICK_BUDGET", budget)
        assert len(first) == len(second) == 1
        assert sorted(first + second) == sorted([one.runtime_id, two.runtime_id])
        assert reverify_chains(db, start + timedelta(minutes=30)) == []  # walked this hour
    assert problems(app) == []

    # A decision rewritten, in the stored entry the report and search read.
    with app.state.db.sessions() as db:
        row = db.scalar(select(AuditEntry).where(AuditEntry.runtime_id == one.runtime_id,
                                                 AuditEntry.seq == 4))
        other = {"allow": "deny", "deny": "allow"}[row.entry["decision"]]
        row.entry = {**row.entry, "decision": other}
        row.decision = other
        db.commit()
    with app.state.db.sessions() as db:
        assert reverify_chains(db, start + timedelta(minutes=59)) == []  # not due yet
    assert problems(app) == []
    with app.state.db.sessions() as db:
        walked = reverify_chains(db, start + timedelta(minutes=61))
    assert sorted(walked) == sorted([one.runtime_id, two.runtime_id])
    [found] = problems(app)
    assert (found["runtime_id"], found["seq"], found["found_by"]) == (one.runtime_id, 4,
                                                                       "worker")
    chain = _chain(client, tokens, team, one.runtime_id)
    assert (chain["status"], chain["problem_seq"]) == ("broken", 4)
    assert _chain(client, tokens, team, two.runtime_id)["status"] == "ok"
    with app.state.db.sessions() as db:  # the broken chain is not walked again
        assert reverify_chains(db, start + timedelta(hours=3)) == [two.runtime_id]

    # The registered task is the same walk, and 0 turns it off.
    monkeypatch.setenv("RUNESTONE_AUDIT_REVERIFY_EVERY", "0")
    with app.state.db.sessions() as db:
        assert reverify_chains(db, start + timedelta(days=1)) == []
    monkeypatch.setenv("RUNESTONE_AUDIT_REVERIFY_EVERY", "1")
    with app.state.db.sessions() as db:  # a chain from before the task: due at once
        db.execute(update(AuditChain).where(AuditChain.runtime_id == two.runtime_id)
                   .values(reverified=None))
        db.commit()
    reverify_due(app.state.db)
    with app.state.db.sessions() as db:
        walked_at = db.scalar(select(AuditChain.reverified).where(
            AuditChain.runtime_id == two.runtime_id))
    assert walked_at is not None


def test_a_real_server_finds_tampering_by_itself_and_alerts(database_url, tmp_path):
    """The server as deployed, with a short re-verification period: a runtime enrolled and
    shipped through the real command line, a decision rewritten in the database behind the
    server's back, and the team's webhook hears of it from the server's own worker."""
    import time

    from notify_receivers import HttpReceiver
    from sqlalchemy import create_engine

    from liveserver import ServerProcess, api, enroll_runtime, runestone
    from runestone_server.audit.models import AuditEntry
    from runestone_server.notify import verify_signature

    with HttpReceiver() as hook:
        server = ServerProcess(database_url, tmp_path / "server", RUNESTONE_SERVER_TICK="0.2",
                               RUNESTONE_AUDIT_REVERIFY_EVERY="1",
                               RUNESTONE_ALERTS_SETTLE="0", RUNESTONE_ALERTS_INTERVAL="0.2",
                               RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS="1")
        server.init()
        server.start()
        engine = create_engine(database_url)
        try:
            token = server.login()
            team = api(server.base, "POST", "/api/v1/teams", token, {"name": "core"})["id"]
            webhook = api(server.base, "POST", f"/api/v1/teams/{team}/channels", token,
                          {"name": "ops", "kind": "webhook", "target": hook.url})
            api(server.base, "POST", f"/api/v1/teams/{team}/alert-rules", token,
                {"name": "tampering", "event": "chain_problem",
                 "channel_ids": [webhook["id"]]})
            home = tmp_path / "laptop"
            assert enroll_runtime(server.base, token, team, home).returncode == 0
            for command in ("ls", "git status", "npm publish"):
                assert runestone(home, "check", "--command", command).returncode == 0
            assert runestone(home, "audit", "ship").returncode == 0
            time.sleep(1.5)  # the worker walks the clean chain: nothing to say
            assert hook.requests == []

            with engine.begin() as db:
                row = db.execute(select(AuditEntry.id, AuditEntry.seq, AuditEntry.entry)
                                 .where(AuditEntry.kind == "decision")
                                 .order_by(AuditEntry.seq.desc()).limit(1)).one()
                db.execute(update(AuditEntry).where(AuditEntry.id == row.id).values(
                    entry={**row.entry, "decision": "allow", "reason": "nothing to see"},
                    decision="allow"))
            deadline = time.time() + 30
            while time.time() < deadline and not hook.requests:
                time.sleep(0.1)
            chains = api(server.base, "GET", f"/api/v1/teams/{team}/audit/chains", token)
        finally:
            engine.dispose()
            server.stop()
    [request] = hook.requests
    assert verify_signature(webhook["secret"], request.headers["X-Runestone-Timestamp"],
                            request.body, request.headers["X-Runestone-Signature"])
    assert json.loads(request.body)["subject"].startswith("[Runestone alert] Audit chain "
                                                          "problem on rt_")
    [chain] = chains
    assert (chain["status"], chain["problem_seq"]) == ("broken", row.seq)
