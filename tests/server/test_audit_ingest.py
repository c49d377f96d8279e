"""Audit ingest on the server, on SQLite and PostgreSQL: entries written by the runtime's own
log (real hashing, real Ed25519 checkpoints) are stored exactly once however they are split
and re-sent; a tampered entry, a forged checkpoint, a gap, a fork, another runtime's entries
and another tenant are refused and reported; retention prunes to a kept signed checkpoint
and what remains still verifies."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from runestone.audit.checkpoint import Signer, checkpoint_message
from runestone.audit.entry import entry_hash, genesis, seal
from runestone.audit.log import AuditLog, list_segments
from runestone.home import Layout
from runestone.identity import create_identity
from runestone_server.audit.models import AuditChain, AuditCheckpoint, AuditEntry
from runestone_server.models import (
    ApiToken,
    Organisation,
    Runtime,
    ServerEvent,
    Team,
    User,
)
from runestone_server.security import hash_password, new_token

PATH = "/api/v1/runtime/audit"


class Rt:
    """A runtime: its own identity and key on disk, its real audit log, and its server row."""

    def __init__(self, app, tmp_path, name: str, org_id: int, team_id: int,
                 checkpoint_every: int = 8) -> None:
        self.layout = Layout(config_dir=tmp_path / name, state_dir=tmp_path / name / "state")
        self.identity = create_identity(self.layout)
        self.log = AuditLog(self.layout.audit_dir, self.identity.runtime_id,
                            signer=Signer(self.layout.private_key_file),
                            checkpoint_every=checkpoint_every)
        self.credential, digest = new_token("rsr")
        with app.state.db.sessions() as db:
            row = Runtime(org_id=org_id, team_id=team_id, runtime_id=self.identity.runtime_id,
                          public_key=self.identity.public_key, labels={},
                          credential_hash=digest)
            db.add(row)
            db.commit()
            self.row_id = row.id
        self.auth = {"Authorization": f"Bearer {self.credential}"}

    @property
    def runtime_id(self) -> str:
        return self.identity.runtime_id

    def decide(self, count: int, *, when: datetime | None = None) -> None:
        """Request + decision pairs, shaped like the gatekeeper's."""
        for n in range(count):
            extra = {"time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")} if when else {}
            self.log.append([
                {"kind": "request", "request_id": f"req_{n:024x}", "tool": "Bash",
                 "input": {"command": f"echo {n}"}, "agent": "claude", "user": "ana",
                 "summary": f"echo {n}", "action_hash": "a" * 64, **extra},
                {"kind": "decision", "request_id": f"req_{n:024x}", "tool": "Bash",
                 "decision": "deny" if n % 3 == 0 else "allow", "rules": ["dev.echo"],
                 "severity": "low", "policy_hash": "b" * 64, "summary": f"echo {n}",
                 "action_hash": "a" * 64, **extra}])

    def entries(self) -> list[dict]:
        found = []
        for _, path in list_segments(self.layout.audit_dir):
            found += [json.loads(line) for line in path.read_text().splitlines()]
        return found


@pytest.fixture
def world(server):
    app, client = server
    with app.state.db.sessions() as db:
        orgs = [Organisation(name="a"), Organisation(name="b")]
        db.add_all(orgs)
        db.flush()
        teams = [Team(org_id=o.id, name="core") for o in orgs]
        db.add_all(teams)
        db.flush()
        tokens = {}
        for org in orgs:
            admin = User(org_id=org.id, username="admin", password_hash=hash_password("x" * 12),
                         org_admin=True)
            db.add(admin)
            db.flush()
            token, digest = new_token("rst")
            db.add(ApiToken(org_id=org.id, user_id=admin.id, name="t", token_hash=digest,
                            scopes=["read", "write"], kind="api"))
            tokens[org.name] = {"Authorization": f"Bearer {token}"}
        db.commit()
        ids = {"a": (orgs[0].id, teams[0].id), "b": (orgs[1].id, teams[1].id)}
    return app, client, ids, tokens


def post(client, rt: Rt, entries, checkpoints=()):
    return client.post(PATH, json={"entries": entries, "checkpoints": list(checkpoints)},
                       headers=rt.auth)


def stored(app, runtime_id: str) -> list[tuple[int, str]]:
    with app.state.db.sessions() as db:
        return list(db.execute(select(AuditEntry.seq, AuditEntry.hash).where(
            AuditEntry.runtime_id == runtime_id).order_by(AuditEntry.seq)).all())


def problems(app) -> list[dict]:
    with app.state.db.sessions() as db:
        return [e.detail for e in db.scalars(select(ServerEvent).where(
            ServerEvent.kind == "audit.chain_problem").order_by(ServerEvent.id))]


def verify(client, tokens, team_id: int, org: str = "a") -> dict[str, dict]:
    answer = client.get(f"/api/v1/teams/{team_id}/audit/verify", headers=tokens[org])
    assert answer.status_code == 200, answer.text
    return {r["runtime_id"]: r for r in answer.json()}


def test_split_resent_and_resumed_batches_store_each_entry_once(world, tmp_path):
    app, client, ids, tokens = world
    rt = Rt(app, tmp_path, "one", *ids["a"])
    rt.decide(20)
    entries = rt.entries()
    assert any(e["kind"] == "checkpoint" for e in entries)
    head = entries[-1]["seq"]
    assert client.get(PATH, headers=rt.auth).json()["acknowledged"] == 0

    first = post(client, rt, entries[:10])
    assert first.status_code == 200, first.text
    assert first.json()["acknowledged"] == 10 and first.json()["stored"] == 10
    again = post(client, rt, entries[5:25])  # overlaps: 5 re-sent, 15 new
    assert again.json()["duplicates"] == 5 and again.json()["stored"] == 15
    assert client.get(PATH, headers=rt.auth).json()["acknowledged"] == 25
    rest = post(client, rt, entries[25:], [json.loads(
        (rt.layout.audit_dir / "checkpoint.json").read_text())])
    assert rest.status_code == 200, rest.text
    assert post(client, rt, entries).json()["duplicates"] == len(entries)  # a full replay

    assert stored(app, rt.runtime_id) == [(e["seq"], e["hash"]) for e in entries]
    assert client.get(PATH, headers=rt.auth).json() == {
        "runtime_id": rt.runtime_id, "acknowledged": head, "last_hash": entries[-1]["hash"],
        "status": "ok", "problem": None}
    report = verify(client, tokens, ids["a"][1])[rt.runtime_id]
    assert report["ok"] and report["entries"] == head and report["checkpoints"] >= 4
    with app.state.db.sessions() as db:
        row = db.scalar(select(AuditEntry).where(AuditEntry.runtime_id == rt.runtime_id,
                                                 AuditEntry.seq == 2))
        assert (row.kind, row.decision, row.rule, row.tool, row.severity, row.org_id) == \
            ("decision", "deny", "dev.echo", "Bash", "low", ids["a"][0])
        assert row.entry == entries[1] and row.time.year == datetime.now(UTC).year
        kept = db.scalar(select(func.count()).select_from(AuditCheckpoint))
        assert kept == sum(e["kind"] == "checkpoint" for e in entries)
        assert db.get(Runtime, rt.row_id).last_seen is not None
    assert problems(app) == []


def test_concurrent_shippers_of_one_runtime_store_each_entry_once(world, tmp_path):
    """The daemon's loop and `runestone audit ship` may send overlapping batches at once."""
    app, client, ids, tokens = world
    rt = Rt(app, tmp_path, "one", *ids["a"])
    rt.decide(25)
    entries = rt.entries()
    results: list[int] = []

    def shipper(offset: int) -> None:
        for start in range(0, len(entries), 9):
            low = max(0, start - offset)
            results.append(post(client, rt, entries[low:start + 9]).status_code)

    threads = [threading.Thread(target=shipper, args=(n,)) for n in (0, 3, 5, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each shipper's batches are contiguous, as the real shipper's are: whatever the
    # interleaving, every batch is taken, nothing stored twice, nothing lost, no alarm.
    assert results == [200] * len(results)
    assert problems(app) == []
    assert stored(app, rt.runtime_id) == [(e["seq"], e["hash"]) for e in entries]
    assert verify(client, tokens, ids["a"][1])[rt.runtime_id]["ok"]


def test_a_tampered_entry_is_refused_and_reported_once(world, tmp_path):
    app, client, ids, tokens = world
    rt = Rt(app, tmp_path, "one", *ids["a"])
    rt.decide(5)
    entries = rt.entries()
    tampered = [dict(e) for e in entries]
    assert tampered[7]["decision"] == "deny"
    tampered[7]["decision"] = "allow"  # seq 8 was a deny; its hash still says so
    refused = post(client, rt, tampered)
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert detail["acknowledged"] == 7 and detail["problem"]["problem"] == "bad_hash"
    assert detail["problem"]["seq"] == 8 and detail["status"] == "broken"
    assert [s for s, _ in stored(app, rt.runtime_id)] == [1, 2, 3, 4, 5, 6, 7]
    assert post(client, rt, tampered[7:]).status_code == 409
    assert problems(app) == [{"runtime_id": rt.runtime_id, "problem": "bad_hash", "seq": 8,
                              "message": detail["problem"]["message"],
                              "found_by": "ingest"}]  # said once
    # Altered under a hash the server already has: still refused.
    stale = dict(entries[1], decision="allow")
    assert post(client, rt, [stale]).json()["detail"]["problem"]["problem"] == "bad_hash"
    # The genuine entries are still taken; the chain stays marked as it broke once.
    assert post(client, rt, entries).status_code == 200
    chains = client.get(f"/api/v1/teams/{ids['a'][1]}/audit/chains", headers=tokens["a"])
    assert chains.json()[0]["status"] == "broken" and chains.json()[0]["last_seq"] == len(entries)


def test_an_entry_that_cannot_be_hashed_is_refused_not_a_server_error(world, tmp_path):
    """A lone surrogate is valid JSON but no UTF-8: a bad hash (409), never a 500."""
    app, client, ids, _ = world
    rt = Rt(app, tmp_path, "odd", *ids["a"])
    rt.decide(1)
    entries = [dict(e) for e in rt.entries()]
    entries[0]["summary"] = "\ud800"
    body = json.dumps({"entries": entries, "checkpoints": []})  # ASCII: "\\ud800" escaped
    refused = client.post(PATH, content=body, headers={**rt.auth,
                                                       "Content-Type": "application/json"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"]["problem"]["problem"] == "bad_hash"


def kept(app, rt: Rt, request_id: str) -> AuditEntry:
    """The stored row of one of the runtime's requests."""
    with app.state.db.sessions() as db:
        return db.scalar(select(AuditEntry).where(AuditEntry.runtime_id == rt.runtime_id,
                                                  AuditEntry.request_id == request_id))


def searched(client, tokens, team_id: int, words: str) -> list[str]:
    """The request ids a full-text search of the team's audit finds."""
    found = client.get(f"/api/v1/teams/{team_id}/audit", params={"q": words},
                       headers=tokens["a"])
    return [e["request_id"] for e in found.json()["items"]]


AWKWARD = "tab\there\nnew line \\N back\\slash \r \\. é 漢字 \U0001f600 ' \" ;"


def test_awkward_text_is_stored_exactly(world, tmp_path):
    """What COPY's text format escapes or means (tab, newline, carriage return, backslash,
    `\\N`, `\\.`) and text beyond ASCII reach the columns and the kept entry as they were
    sent; the entry still verifies and its words are found."""
    app, client, ids, tokens = world
    rt = Rt(app, tmp_path, "awkward", *ids["a"])
    rt.log.append([{"kind": "request", "request_id": "req_awkward", "tool": AWKWARD,
                    "input": {"command": AWKWARD, AWKWARD: [AWKWARD]}, "agent": AWKWARD,
                    "user": "ana", "summary": AWKWARD, "reason": AWKWARD}])
    entries = rt.entries()
    assert post(client, rt, entries).status_code == 200
    row = kept(app, rt, "req_awkward")
    assert row.entry == entries[0] and entry_hash(row.entry) == row.hash
    assert (row.summary, row.tool, row.agent) == (AWKWARD, AWKWARD, AWKWARD)
    assert verify(client, tokens, ids["a"][1])[rt.runtime_id]["ok"]
    assert searched(client, tokens, ids["a"][1], "slash") == ["req_awkward"]


def test_a_nul_character_anywhere_in_an_entry_is_stored_and_searchable(world, tmp_path):
    """PostgreSQL cannot turn JSON holding `\\u0000` into text; the full-text expression read
    the entry's `reason` that way, so such an entry failed every retry of its batch and the
    runtime's shipping stopped. Now it is stored whole, verifies, and its summary's words
    are found; the entries after it ship too. An agent chooses its tool input."""
    app, client, ids, tokens = world
    rt = Rt(app, tmp_path, "nul", *ids["a"])
    nul = "zero\x00byte"
    rt.log.append([{"kind": "request", "request_id": "req_nul", "tool": "Bash",
                    "input": {"command": f"printf {nul}"}, "agent": "claude-code",
                    "user": "ana", "summary": f"printf nulmarker {nul}", "reason": nul,
                    "purpose": nul}])
    rt.decide(2)
    entries = rt.entries()
    assert post(client, rt, entries).status_code == 200
    row = kept(app, rt, "req_nul")
    assert row.entry == entries[0] and entry_hash(row.entry) == row.hash
    assert client.get(PATH, headers=rt.auth).json()["acknowledged"] == len(entries)
    assert verify(client, tokens, ids["a"][1])[rt.runtime_id]["ok"]
    assert searched(client, tokens, ids["a"][1], "nulmarker") == ["req_nul"]
    story = client.get(f"/api/v1/teams/{ids['a'][1]}/audit/requests/req_nul",
                       headers=tokens["a"])
    assert story.status_code == 200 and "req_nul" in story.text, story.text


# Reasons and purposes of every JSON kind, each with the word its search must find (None:
# the document has nothing of it). The entry with the NUL is read as PostgreSQL read it
# before the columns existed: its reason and purpose are left out (migration 1001).
DOCUMENT_CASES = [
    ({"reason": "Exfiltration risk", "purpose": "Rotate the staging certificates"},
     ("exfiltration", "certificates")),
    # (SQLite's document reads JSON true as 1, as it always did: no word of it is asked.)
    ({"reason": 4711, "purpose": True}, ("4711", None)),
    ({"reason": ["caf\u00e9 ticket", {"n": 1.5}], "purpose": {"why": "backup nightly"}},
     ("ticket", "nightly")),
    ({"reason": "", "purpose": None}, (None, None)),
    ({"reason": "literal \\u0000 text", "purpose": "quokka"}, ("literal", "quokka")),
    ({"reason": "wombat", "input": {"k\x00ey": "v"}}, (None, None)),
]


def test_the_reason_and_purpose_columns_are_what_the_text_search_read_from_the_entry(
        world, tmp_path):
    """The text document reads `reason` and `purpose` from columns ingest fills: they hold
    what the document read from the stored JSON before (on PostgreSQL, compared with the
    database's own `runestone_json_text` of the stored entry), they are found by search,
    and the entries still verify."""
    from sqlalchemy import text

    from runestone_server.audit.ingest import document_fields

    app, client, ids, tokens = world
    rt = Rt(app, tmp_path, "texts", *ids["a"])
    for number, (fields, _) in enumerate(DOCUMENT_CASES):
        rt.log.append([{"kind": "request", "request_id": f"req_text{number}", "tool": "Bash",
                        "summary": f"echo {number}", **fields}])
    assert post(client, rt, rt.entries()).status_code == 200
    for number, (fields, words) in enumerate(DOCUMENT_CASES):
        row = kept(app, rt, f"req_text{number}")
        assert (row.reason, row.purpose) == document_fields(row.entry), fields
        if app.state.db.engine.dialect.name == "postgresql":
            with app.state.db.engine.connect() as connection:
                assert tuple(connection.execute(text(
                    "SELECT runestone_json_text(entry, 'reason'), "
                    "runestone_json_text(entry, 'purpose') FROM audit_entries "
                    "WHERE id = :id"), {"id": row.id}).one()) == (row.reason, row.purpose)
        for word in words:
            if word is not None:
                assert searched(client, tokens, ids["a"][1], word) == [f"req_text{number}"]
    if app.state.db.engine.dialect.name == "postgresql":  # SQLite reads NULs; see above
        assert searched(client, tokens, ids["a"][1], "wombat") == []
    assert verify(client, tokens, ids["a"][1])[rt.runtime_id]["ok"]


def test_a_stored_row_the_chain_does_not_know_refuses_the_whole_batch(world, tmp_path):
    """A row already at a seq the chain has not reached (written behind ingest's back) makes
    storing the batch fail on the unique (runtime, seq): the batch is retried, then refused
    as busy (503), and nothing of it is kept."""
    app, client, ids, _ = world
    rt = Rt(app, tmp_path, "planted", *ids["a"])
    rt.decide(3)
    entries = rt.entries()
    with app.state.db.sessions() as db:
        db.add(AuditEntry(org_id=ids["a"][0], team_id=ids["a"][1], runtime_id=rt.runtime_id,
                          seq=4, kind="note", time=datetime.now(UTC), hash="f" * 64,
                          entry={"planted": True}))
        db.commit()
    refused = post(client, rt, entries)
    assert refused.status_code == 503, refused.text
    assert stored(app, rt.runtime_id) == [(4, "f" * 64)]
    assert client.get(PATH, headers=rt.auth).json()["acknowledged"] == 0


def _with_forged_checkpoint(entries: list[dict], signature: str) -> list[dict]:
    """The first checkpoint entry re-signed with `signature`, its own hash recomputed and
    the entries after it re-chained, so only the signature is wrong."""
    out, prev = [], None
    for entry in entries:
        if prev is not None:
            entry = seal(entry, seq=entry["seq"], prev=prev)
        if entry["kind"] == "checkpoint" and prev is None:
            record = dict(entry["checkpoint"], signature=signature)
            entry = seal(dict(entry, checkpoint=record), seq=entry["seq"], prev=entry["prev"])
        prev = entry["hash"] if (prev is not None or entry["kind"] == "checkpoint") else None
        out.append(entry)
    return out


def test_a_forged_checkpoint_signature_is_refused(world, tmp_path):
    app, client, ids, _ = world
    rt = Rt(app, tmp_path, "one", *ids["a"])
    rt.decide(6)
    entries = rt.entries()
    position = next(i for i, e in enumerate(entries) if e["kind"] == "checkpoint")
    record = entries[position]["checkpoint"]
    other_key = Ed25519PrivateKey.generate()  # a signature, but not by the enrolled key
    wrong = other_key.sign(checkpoint_message(rt.runtime_id, record["seq"],
                                              record["hash"])).hex()
    forged = _with_forged_checkpoint(entries, wrong)
    assert entry_hash(forged[position]) == forged[position]["hash"]
    answer = post(client, rt, forged)
    assert answer.status_code == 409
    assert answer.json()["detail"]["problem"]["problem"] == "bad_signature"
    assert answer.json()["detail"]["acknowledged"] == position
    # A standalone checkpoint record with a forged signature is refused too.
    rt2 = Rt(app, tmp_path, "two", *ids["a"])
    rt2.decide(2)
    good = rt2.entries()
    assert post(client, rt2, good).status_code == 200
    fake = {"runtime": rt2.runtime_id, "seq": 4, "hash": good[3]["hash"], "signature": wrong}
    refused = post(client, rt2, [], [fake])
    assert refused.json()["detail"]["problem"]["problem"] == "bad_signature"
    assert {p["problem"] for p in problems(app)} == {"bad_signature"}


def test_a_gap_and_a_fork_are_refused(world, tmp_path):
    app, client, ids, _ = world
    rt = Rt(app, tmp_path, "one", *ids["a"])
    rt.decide(5)
    entries = rt.entries()
    gap = post(client, rt, entries[:3] + entries[5:])
    assert gap.status_code == 409
    assert gap.json()["detail"]["problem"] == {
        "problem": "gap", "seq": 4, "message": "expected seq 4, got 6: entries are missing"}
    assert [s for s, _ in stored(app, rt.runtime_id)] == [1, 2, 3]
    # Another history from seq 3 on: a valid entry at a stored seq, and one that chains to it.
    other = seal({"kind": "note", "time": entries[2]["time"], "runtime": rt.runtime_id,
                  "text": "rewritten"}, seq=3, prev=entries[1]["hash"])
    fork = post(client, rt, [other])
    assert fork.json()["detail"]["problem"]["problem"] == "fork"
    after = seal({"kind": "note", "time": entries[2]["time"], "runtime": rt.runtime_id},
                 seq=4, prev=other["hash"])
    assert post(client, rt, [after]).json()["detail"]["problem"]["problem"] == "fork"
    assert stored(app, rt.runtime_id) == [(e["seq"], e["hash"]) for e in entries[:3]]
    assert [p["problem"] for p in problems(app)] == ["gap", "fork", "fork"]
    assert post(client, rt, entries[3:]).status_code == 200  # the true history continues


def test_another_runtimes_entries_and_another_tenant(world, tmp_path):
    app, client, ids, tokens = world
    a = Rt(app, tmp_path, "a", *ids["a"])
    b = Rt(app, tmp_path, "b", *ids["b"])
    b.decide(3)
    replay = post(client, a, b.entries())  # b's genuine, signed entries, sent as a
    assert replay.status_code == 409
    assert replay.json()["detail"]["problem"]["problem"] == "fork"
    assert stored(app, a.runtime_id) == [] and stored(app, b.runtime_id) == []
    assert post(client, b, b.entries()).status_code == 200  # b's own chain is untouched
    with app.state.db.sessions() as db:
        assert set(db.scalars(select(AuditEntry.org_id))) == {ids["b"][0]}
    # Tenant a sees neither b's chains nor its team; b sees its own.
    assert client.get(f"/api/v1/teams/{ids['b'][1]}/audit/chains",
                      headers=tokens["a"]).status_code == 404
    assert client.get(f"/api/v1/teams/{ids['b'][1]}/audit/verify",
                      headers=tokens["a"]).status_code == 404
    assert client.get(f"/api/v1/teams/{ids['a'][1]}/audit/chains",
                      headers=tokens["a"]).json()[0]["runtime_id"] == a.runtime_id
    assert [c["runtime_id"] for c in client.get(
        f"/api/v1/teams/{ids['b'][1]}/audit/chains", headers=tokens["b"]).json()] == \
        [b.runtime_id]
    # A person's token is not a runtime credential, and vice versa.
    assert client.post(PATH, json={"entries": []}, headers=tokens["a"]).status_code == 401
    assert client.get(f"/api/v1/teams/{ids['a'][1]}/audit/chains",
                      headers=a.auth).status_code == 401


def test_malformed_oversized_and_unauthenticated_batches(world, tmp_path):
    app, client, ids, _ = world
    rt = Rt(app, tmp_path, "one", *ids["a"])
    bad = client.post(PATH, content=b"{not json", headers={**rt.auth,
                                                           "Content-Type": "application/json"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["detail"]
    shape = client.post(PATH, json={"entries": "all"}, headers=rt.auth)
    assert shape.status_code == 400 and "entries" in shape.json()["detail"]
    many = client.post(PATH, json={"entries": [{}] * 1001}, headers=rt.auth)
    assert many.status_code == 400 and "1000" in many.json()["detail"]
    huge = client.post(PATH, content=b'{"entries": ["' + b"x" * (17 * 1024 * 1024) + b'"]}',
                       headers={**rt.auth, "Content-Type": "application/json"})
    assert huge.status_code == 413
    assert client.post(PATH, json={"entries": []}).status_code == 401
    # Issue 17: 100,000 nested brackets were a 500.
    deep = client.post(PATH, content=b'{"entries": [' + b"[" * 100_000 + b"]" * 100_000 +
                       b"]}", headers={**rt.auth, "Content-Type": "application/json"})
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["detail"]
    junk = client.post(PATH, json={"entries": [{"seq": "1", "hash": 5}]}, headers=rt.auth)
    assert junk.status_code == 409 and junk.json()["detail"]["problem"]["problem"] == "bad_hash"


def test_retention_prunes_to_a_kept_checkpoint_and_the_rest_verifies(world, tmp_path,
                                                                     monkeypatch):
    app, client, ids, tokens = world
    rt = Rt(app, tmp_path, "one", *ids["a"])
    other = Rt(app, tmp_path, "b", *ids["b"])
    old = datetime.now(UTC) - timedelta(days=90)
    rt.decide(10, when=old)  # seq 1..22 (checkpoints at 9 and 18), all 90 days old
    rt.decide(3)  # recent
    other.decide(10, when=old)
    for runtime in (rt, other):
        assert post(client, runtime, runtime.entries()).status_code == 200
    entries = rt.entries()
    signed = [e["checkpoint"]["seq"] for e in entries if e["kind"] == "checkpoint"]
    cutoff = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    newest_old = max(s for s in signed if entries[s - 1]["time"] < cutoff)
    assert 0 < newest_old < entries[-1]["seq"] - 6

    assert client.post("/api/v1/audit/retention/prune", headers=tokens["a"]).status_code == 400
    assert client.put("/api/v1/audit/retention", json={"days": 0},
                      headers=tokens["a"]).status_code == 422
    assert client.put("/api/v1/audit/retention", json={"days": 30},
                      headers=tokens["a"]).json()["days"] == 30
    pruned = client.post("/api/v1/audit/retention/prune", headers=tokens["a"])
    assert pruned.status_code == 200, pruned.text
    assert pruned.json()["deleted"] == newest_old
    remaining = [s for s, _ in stored(app, rt.runtime_id)]
    assert remaining == list(range(newest_old + 1, entries[-1]["seq"] + 1))
    assert len(stored(app, other.runtime_id)) == len(other.entries())  # tenant b untouched
    report = verify(client, tokens, ids["a"][1])[rt.runtime_id]
    assert report["ok"], report
    assert report["start_seq"] == newest_old
    with app.state.db.sessions() as db:
        kept = db.scalars(select(AuditCheckpoint.seq).where(
            AuditCheckpoint.runtime_id == rt.runtime_id)).all()
        assert set(signed) <= set(kept)  # the signed checkpoints outlive their entries
        event = db.scalar(select(ServerEvent).where(ServerEvent.kind == "audit.pruned"))
        assert event.detail["runtime_id"] == rt.runtime_id
        assert event.detail["through_seq"] == newest_old
        # Tampering with what remains is still found, now from the kept checkpoint.
        row = db.scalar(select(AuditChain).where(AuditChain.runtime_id == rt.runtime_id))
        row.base_hash = "0" * 64
        db.commit()
    tampered = verify(client, tokens, ids["a"][1])[rt.runtime_id]
    assert not tampered["ok"] and tampered["status"] == "broken"
    assert tampered["problem"] == tampered["stored_problem"] != ""
    with app.state.db.sessions() as db:
        db.scalar(select(AuditChain).where(AuditChain.runtime_id == rt.runtime_id)) \
            .base_hash = entries[newest_old - 1]["hash"]
        db.commit()

    # Shipping goes on after pruning: a full re-send is acknowledged, new entries verify.
    # The chain stays marked by the tampering found above: putting the row back does not
    # make it unfound.
    rt.decide(2)
    answer = post(client, rt, rt.entries())
    assert answer.status_code == 200 and answer.json()["status"] == "broken"
    assert answer.json()["stored"] == len(rt.entries()) - len(entries)
    again = verify(client, tokens, ids["a"][1])[rt.runtime_id]
    assert again["stored_problem"] == "" and again["head_seq"] == rt.entries()[-1]["seq"]
    assert (again["status"], again["problem"]) == ("broken", tampered["problem"])

    # The worker prunes tenant b once its retention is set, once per period.
    from runestone_server import worker

    client.put("/api/v1/audit/retention", json={"days": 30}, headers=tokens["b"])
    monkeypatch.setenv("RUNESTONE_AUDIT_PRUNE_EVERY", "3600")
    worker.run_once(app.state.db)
    left = len(stored(app, other.runtime_id))
    assert left < len(other.entries())
    assert verify(client, tokens, ids["b"][1], "b")[other.runtime_id]["ok"]
    before = len(other.entries())
    other.decide(1, when=old)
    other.log.checkpoint()
    assert post(client, other, other.entries()).status_code == 200
    worker.run_once(app.state.db)  # not due again within the period
    assert len(stored(app, other.runtime_id)) == left + len(other.entries()) - before


# --- the chain verifier against random splits and re-sends ---------------------------------

def _memory_chain(runtime_id: str, key: Ed25519PrivateKey, length: int,
                  every: int) -> list[dict]:
    entries, prev = [], genesis(runtime_id)
    while len(entries) < length:
        seq = len(entries) + 1
        if seq % every == 0:
            signature = key.sign(checkpoint_message(runtime_id, seq - 1, prev)).hex()
            body = {"kind": "checkpoint", "checkpoint": {"runtime": runtime_id, "seq": seq - 1,
                                                         "hash": prev, "signature": signature}}
        else:
            body = {"kind": "note", "n": seq}
        entry = seal({**body, "time": "2026-11-25T10:00:00.000000Z", "runtime": runtime_id},
                     seq=seq, prev=prev)
        entries.append(entry)
        prev = entry["hash"]
    return entries


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(length=st.integers(1, 40),
       cuts=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1,
                     max_size=8))
def test_any_split_and_resend_of_a_valid_chain_is_stored_exactly_once(server, length, cuts):
    app, _ = server
    from runestone_server.audit.ingest import ingest

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw().hex()
    with app.state.db.sessions() as db:
        org = db.scalar(select(Organisation).where(Organisation.name == "prop"))
        if org is None:
            org = Organisation(name="prop")
            db.add(org)
            db.flush()
            db.add(Team(org_id=org.id, name="t"))
            db.flush()
        team = db.scalar(select(Team).where(Team.org_id == org.id))
        runtime_id = "rt_" + key.public_key().public_bytes_raw().hex()[:32]
        runtime = Runtime(org_id=org.id, team_id=team.id, runtime_id=runtime_id,
                          public_key=public, labels={}, credential_hash=public)
        db.add(runtime)
        db.commit()
        entries = _memory_chain(runtime_id, key, length, every=5)
        shipped = 0  # what the runtime believes the server has
        for low, high in cuts:
            # A batch starts at or before what was acknowledged (resends are allowed) and
            # runs any length; the server must never complain.
            start = min(low, shipped)
            result = ingest(db, runtime, entries[start:start + high])
            assert result.problem is None, result.problem
            shipped = result.acknowledged
        result = ingest(db, runtime, entries[shipped:])
        assert result.problem is None and result.acknowledged == length
        rows = db.execute(select(AuditEntry.seq, AuditEntry.hash).where(
            AuditEntry.runtime_id == runtime_id).order_by(AuditEntry.seq)).all()
        assert [tuple(r) for r in rows] == [(e["seq"], e["hash"]) for e in entries]
        from runestone_server.audit.verify import verify_stored

        assert verify_stored(db, runtime).ok


def test_the_shipper_reads_from_any_seq_across_segments_and_skips_a_torn_tail(tmp_path,
                                                                            monkeypatch):
    from runestone.remote import shipper
    from runestone.remote.shipper import _batches, entries_after, local_head

    layout = Layout(config_dir=tmp_path, state_dir=tmp_path / "state")
    identity = create_identity(layout)
    log = AuditLog(layout.audit_dir, identity.runtime_id,
                   signer=Signer(layout.private_key_file), segment_bytes=2000)
    for n in range(30):
        log.append([{"kind": "note", "n": n}])
    segments = list_segments(layout.audit_dir)
    assert len(segments) > 3
    with segments[-1][1].open("ab") as handle:
        handle.write(b'{"kind":"note","seq":31')  # a torn write, never acknowledged
    assert local_head(layout.audit_dir) == 30
    for after in (0, 1, 12, 29, 30):
        assert [e["seq"] for e, *_ in entries_after(layout.audit_dir, after)] == \
            list(range(after + 1, 31))
    batches = list(_batches(layout.audit_dir, 4))
    assert [e["seq"] for batch in batches for e in batch] == list(range(5, 31))
    monkeypatch.setattr(shipper, "BATCH_ENTRIES", 4)
    assert [len(b) for b in _batches(layout.audit_dir, 4)] == [4] * 6 + [2]
    monkeypatch.setattr(shipper, "BATCH_BYTES", 1)  # an entry larger than a batch goes alone
    assert [len(b) for b in _batches(layout.audit_dir, 25)] == [1] * 5


@pytest.fixture
def live(world):
    """The same app served over real HTTP (uvicorn in a thread), for the runtime's shipper."""
    import uvicorn

    app, client, ids, tokens = world
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    http = uvicorn.Server(config)
    thread = threading.Thread(target=http.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while not http.started:
        assert datetime.now(UTC) < deadline, "uvicorn did not start"
        threading.Event().wait(0.02)
    yield app, client, ids, tokens, f"http://127.0.0.1:{listener.getsockname()[1]}"
    http.should_exit = True
    thread.join(timeout=10)
    listener.close()


def _enrolled(rt: Rt, base: str) -> None:
    """What `runestone enroll` leaves behind: the server's address and the credential."""
    (rt.layout.config_dir / "remote.json").write_text(json.dumps({
        "server": base, "team_id": 1, "runtime_id": rt.runtime_id, "labels": {},
        "server_public_key": "00" * 32}))
    (rt.layout.keys_dir / "remote.credential").write_text(rt.credential)


def test_the_shipper_resumes_says_what_it_did_and_stops_at_a_refusal(live, tmp_path):
    from runestone.remote.shipper import ShipError, read_ship_state, ship

    app, _, ids, _, base = live
    rt = Rt(app, tmp_path, "one", *ids["a"])
    _enrolled(rt, base)
    rt.decide(6)
    first = ship(rt.layout)
    assert (first.sent, first.stored, first.acknowledged) == (len(rt.entries()),) * 3
    rt.decide(2)
    second = ship(rt.layout)
    assert second.sent == second.stored == len(rt.entries()) - first.acknowledged
    assert read_ship_state(rt.layout)["acknowledged"] == len(rt.entries())
    assert ship(rt.layout).sent == 0  # the server says it has everything

    # An entry altered on disk after the server took it cannot be re-sent (the server
    # resumes after it); one altered before is refused, and shipping stops there.
    rt.decide(1)
    segment = list_segments(rt.layout.audit_dir)[-1][1]
    lines = segment.read_text().splitlines(keepends=True)
    assert '"decision":"deny"' in lines[-1]
    lines[-1] = lines[-1].replace('"decision":"deny"', '"decision":"allow"')
    segment.write_text("".join(lines))
    with pytest.raises(ShipError, match=r"refused the log from seq \d+ \(bad_hash\)"):
        ship(rt.layout)
    assert "bad_hash" in read_ship_state(rt.layout)["last_error"]
    assert problems(app)[0]["runtime_id"] == rt.runtime_id


def test_the_shipper_backs_off_and_keeps_the_entries_when_the_server_is_away(tmp_path, world):
    from runestone.remote.shipper import ShipError, read_ship_state, ship

    app, _, ids, _ = world
    rt = Rt(app, tmp_path, "one", *ids["a"])
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once closed
    _enrolled(rt, f"http://127.0.0.1:{port}")
    rt.decide(2)
    waits: list[float] = []
    with pytest.raises(ShipError, match="does not answer"):
        ship(rt.layout, retries=3, backoff=0.5, sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]
    assert "does not answer" in read_ship_state(rt.layout)["last_error"]
    assert len(rt.entries()) == 4  # the log is the queue: nothing consumed


ODD_NUMBERS = st.one_of(
    st.sampled_from([0, -1, 2**63, 2**63 - 1, -(2**63) - 1, 10**30, -(10**30), 1.0, 1.5,
                     True, "3", None, [], {}]),
    st.integers(), st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entry_seq=ODD_NUMBERS, checkpoint_seq=ODD_NUMBERS, spell_out=st.booleans())
def test_odd_sequence_numbers_are_refused_never_a_server_error(world, tmp_path_factory,
                                                               entry_seq, checkpoint_seq,
                                                               spell_out):
    """What an enrolled runtime (or whoever holds its credential) sends as `seq`: any JSON
    number or other value, infinity spelt `1e999` too. A whole number the chain can hold is
    judged as usual; anything else is refused with the chain's problem, not a 500 from
    `int()` or from a database whose integers it overflows (found by probing after the token
    expiry bug)."""
    app, client, ids, _tokens = world
    rt = Rt(app, tmp_path_factory.mktemp("rt"), "odd", *ids["a"])
    rt.decide(3)
    entries = rt.entries()
    assert post(client, rt, entries[:2]).status_code == 200
    odd_entry = {**entries[2], "seq": entry_seq}
    record = {"runtime": rt.runtime_id, "seq": checkpoint_seq, "hash": entries[1]["hash"],
              "signature": "00" * 64}
    body = json.dumps({"entries": [odd_entry], "checkpoints": [record]})
    if spell_out:  # what json.dumps writes for infinity, as another sender would write it
        body = body.replace("-Infinity", "-1e999").replace("Infinity", "1e999")
    answer = client.post(PATH, content=body,
                         headers={**rt.auth, "Content-Type": "application/json"})
    assert answer.status_code < 500, answer.text
    if answer.status_code == 200 and type(entry_seq) is not int:
        assert answer.json()["acknowledged"] == 2  # the odd entry was not stored
