"""Revoking a runtime, on SQLite and PostgreSQL: managers of its team (and org admins) revoke
it for good, with a reason; every runtime-credential endpoint refuses it from then on and
stores nothing it sends; its open asks are cancelled with a step on their timeline; its id
is never enrolled again. The last test does it with a real server process and the real
runtime command line: the runtime's pull, audit shipping and asks are refused, the ask is
denied on the machine, and what it shipped before still verifies."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from fastapi import HTTPException
from sqlalchemy import func, select
from test_approvals_end_to_end import COMMAND, Org, approval_id_of
from test_approvals_routing import app_client as app_client  # the fixtures, shared
from test_approvals_routing import world as world

from liveserver import ServerProcess, api, request, runestone
from runestone.audit import verify_log
from runestone.audit.query import read_entries
from runestone.home import Layout
from runestone.identity import load_identity

REVOKE = "/api/v1/teams/{team}/runtimes/{runtime}/revoke"
REASON = "laptop stolen at the airport"


def revoke(world, runtime: str, reason: str = REASON, user: str = "admin",
           status: int = 200) -> dict:
    runtime_id, _ = world.runtimes[runtime]
    return world.ok(user, "POST", REVOKE.format(team=world.ids["team"], runtime=runtime_id),
                    {"reason": reason}, status=status)


def as_runtime(world, name: str, method: str, path: str, body=None):
    _, credential = world.runtimes[name]
    return world.client.request(method, path, json=body,
                                headers={"Authorization": f"Bearer {credential}"})


def stored(app) -> dict[str, object]:
    """What the server keeps of runtimes' calls: asks, audit entries and chains, contact."""
    from runestone_server.approvals.models import ApprovalRequest
    from runestone_server.audit.models import AuditChain, AuditEntry
    from runestone_server.models import Runtime

    with app.state.db.sessions() as db:
        return {
            "asks": db.scalar(select(func.count()).select_from(ApprovalRequest)),
            "entries": db.scalar(select(func.count()).select_from(AuditEntry)),
            "chains": db.scalar(select(func.count()).select_from(AuditChain)),
            "contact": sorted((r.runtime_id, str(r.last_seen), r.policy_hash)
                              for r in db.scalars(select(Runtime))),
        }


def test_a_revoked_runtime_is_refused_everywhere_and_nothing_it_sends_is_stored(world):
    team = world.ids["team"]
    world.ok("admin", "POST", f"/api/v1/teams/{team}/policies",
             {"text": '[policy]\ndefault = "ask"\ninclude = ["default"]\n'}, status=201)
    world.ok("admin", "POST", f"/api/v1/teams/{team}/publications", {"number": 1}, status=201)
    assert as_runtime(world, "prod", "GET", "/api/v1/runtime/policy").status_code == 200
    world.ask("prod", "req_before")

    revoked = revoke(world, "prod")
    runtime_id = world.runtimes["prod"][0]
    assert (revoked["runtime_id"], revoked["revoked_by"], revoked["revoked_reason"]) == \
        (runtime_id, "admin", REASON)
    listed = {r["runtime_id"]: r for r in world.ok("admin", "GET",
                                                   f"/api/v1/teams/{team}/runtimes")}
    assert listed[runtime_id]["revoked"] == revoked["revoked"] is not None
    assert listed[world.runtimes["dev"][0]]["revoked"] is None
    # Every member reads the revocation, not only managers.
    seen = world.ok("carol", "GET", f"/api/v1/teams/{team}/runtimes")
    assert {r["runtime_id"]: r["revoked_reason"] for r in seen}[runtime_id] == REASON

    before = stored(world.app)
    calls = [("GET", "/api/v1/runtime/policy", None),
             ("GET", "/api/v1/runtime/audit", None),
             ("POST", "/api/v1/runtime/audit", {"entries": [], "checkpoints": []}),
             ("POST", "/api/v1/runtime/approvals", {
                 "request_id": "req_after", "action_hash": "d" * 64, "tool": "Bash"}),
             ("POST", "/api/v1/runtime/approvals/req_before/cancel", {}),
             ("GET", "/api/v1/runtime/approvals/req_before?wait=0", None)]
    for method, path, body in calls:
        answer = as_runtime(world, "prod", method, path, body)
        assert answer.status_code == 403, (path, answer.status_code, answer.text)
        detail = answer.json()["detail"]
        assert "revoked by admin" in detail and REASON in detail, detail
        assert len(detail) <= 200  # the runtime shows its user the first 200 characters
    assert stored(world.app) == before
    # The other runtime of the team is not touched.
    assert as_runtime(world, "dev", "GET", "/api/v1/runtime/policy").status_code == 200
    world.ask("dev", "req_dev")

    # Revoking again changes nothing: the first revocation stands, recorded once.
    again = revoke(world, "prod", reason="another story")
    assert again == revoked
    events = world.ok("admin", "GET", f"/api/v1/teams/{team}/events")
    mine = [e for e in events if e["kind"] == "runtime.revoked"]
    assert [(e["actor"], e["detail"]["runtime_id"], e["detail"]["reason"]) for e in mine] \
        == [("user:admin", runtime_id, REASON)]


def test_only_managers_of_the_runtimes_team_revoke_it(world):
    team, b_team = world.ids["team"], world.ids["b_team"]
    prod, b_prod = world.runtimes["prod"][0], world.runtimes["b-prod"][0]
    body = {"reason": "retired"}
    for user, status in (("carol", 403), ("ops1", 403), ("stranger", 404), ("b-admin", 404)):
        answer = world.as_user(user, "POST", REVOKE.format(team=team, runtime=prod), body)
        assert answer.status_code == status, (user, answer.text)
    # Another tenant's runtime through one's own team, and one's own through theirs.
    assert world.as_user("admin", "POST", REVOKE.format(team=team, runtime=b_prod),
                         body).status_code == 404
    assert world.as_user("b-admin", "POST", REVOKE.format(team=b_team, runtime=prod),
                         body).status_code == 404
    assert world.as_user("admin", "POST", REVOKE.format(team=team, runtime="rt_" + "f" * 16),
                         body).status_code == 404
    for reason in ("", "   ", "a\x00b", "x" * 2001):
        assert world.as_user("admin", "POST", REVOKE.format(team=team, runtime=prod),
                             {"reason": reason}).status_code == 422, repr(reason[:5])
    assert as_runtime(world, "prod", "GET", "/api/v1/runtime/policy").status_code == 204
    # The other tenant's admin revokes their own runtime; ours are untouched.
    revoke_b = world.as_user("b-admin", "POST", REVOKE.format(team=b_team, runtime=b_prod),
                             body)
    assert revoke_b.status_code == 200 and revoke_b.json()["revoked_by"] == "b-admin"
    assert as_runtime(world, "prod", "GET", "/api/v1/runtime/policy").status_code == 204


def test_open_asks_are_cancelled_with_a_step_on_their_timeline(world):
    ops = world.group("ops", ["ops1"])
    world.route("all", [(ops, 600, 1)])
    pending = world.ask("prod", "req_open")
    hosted = world.ask("prod", "req_host", mode="ask")
    decided = world.ask("prod", "req_decided")
    assert world.vote("ops1", decided["id"], "deny", "no").status_code == 200
    other = world.ask("dev", "req_dev")
    assert {a["request_id"] for a in world.ok("ops1", "GET", "/api/v1/approvals")} == \
        {"req_open", "req_dev"}

    revoke(world, "prod")
    detail = world.ok("admin", "GET", f"/api/v1/approvals/{pending['id']}")
    assert detail["state"] == "cancelled"
    assert detail["decided_reason"] == f"the runtime was revoked: {REASON}"
    step = detail["timeline"][-1]
    assert (step["kind"], step["actor"]) == ("approval.cancelled", "user:admin")
    assert world.ok("admin", "GET", f"/api/v1/approvals/{hosted['id']}")["state"] == "host"
    assert world.ok("admin", "GET", f"/api/v1/approvals/{decided['id']}")["state"] == "denied"
    assert world.ok("admin", "GET", f"/api/v1/approvals/{other['id']}")["state"] == "pending"
    assert [a["request_id"] for a in world.ok("ops1", "GET", "/api/v1/approvals")] == \
        ["req_dev"]
    # Nobody decides a cancelled ask afterwards.
    assert world.vote("ops1", pending["id"]).status_code == 409


def test_a_long_poll_waiting_when_its_runtime_is_revoked_ends_refused(world):
    """The runtime was let in before the revocation: its wait ends at once, refused."""
    world.ask("prod", "req_waiting")
    answers: list = []
    waiter = threading.Thread(target=lambda: answers.append(
        world.poll("prod", "req_waiting", wait=30)))
    waiter.start()
    time.sleep(0.5)
    started = time.monotonic()
    revoke(world, "prod")
    waiter.join(timeout=30)
    assert time.monotonic() - started < 10
    [answer] = answers
    assert answer.status_code == 403 and REASON in answer.json()["detail"], answer.text


def test_the_worker_cancels_the_open_asks_a_revocation_left(world):
    """A replica that stopped between committing a revocation and cancelling its asks."""
    from sqlalchemy import update

    from runestone_server.approvals.revoked import sweep
    from runestone_server.models import Runtime, utcnow

    pending = world.ask("prod", "req_left")
    world.ask("dev", "req_dev")
    with world.app.state.db.sessions() as db:
        db.execute(update(Runtime).where(Runtime.runtime_id == world.runtimes["prod"][0])
                   .values(revoked=utcnow(), revoked_by="admin", revoked_reason="lost"))
        db.commit()
    assert sweep(world.app.state.db) == 1
    assert sweep(world.app.state.db) == 0
    detail = world.ok("admin", "GET", f"/api/v1/approvals/{pending['id']}")
    assert (detail["state"], detail["decided_reason"]) == \
        ("cancelled", "the runtime was revoked: lost")
    assert detail["timeline"][-1]["actor"] == "server"
    assert len(world.ok("admin", "GET",
                        f"/api/v1/teams/{world.ids['team']}/approvals?state=pending")) == 1


def test_a_write_in_flight_is_refused_or_cancelled_never_kept(world):
    """Authenticated before the revocation, storing after it: `ensure_live` in the write's
    own transaction refuses it; a write that locked the runtime first makes the revocation
    wait, then be cancelled by it."""
    from runestone_server.approvals import service
    from runestone_server.approvals.service import NewAsk, RuntimeRef
    from runestone_server.auth import Principal
    from runestone_server.models import Runtime, User
    from runestone_server.revocation import ensure_live
    from runestone_server.revocation import revoke as revoke_runtime

    database = world.app.state.db
    prod_id, dev_id = world.runtimes["prod"][0], world.runtimes["dev"][0]
    with database.sessions() as db:
        prod = db.scalar(select(Runtime).where(Runtime.runtime_id == prod_id))
        revoke(world, "prod")  # after the credential was checked
        with pytest.raises(HTTPException) as refused:
            ensure_live(db, prod.id)
        assert refused.value.status_code == 403 and REASON in refused.value.detail

    done = threading.Event()

    def revoke_dev() -> None:
        with database.sessions() as other:
            who = Principal(other.scalar(select(User).where(User.username == "admin")),
                            ("read", "write"))
            runtime = other.scalar(select(Runtime).where(Runtime.runtime_id == dev_id))
            revoke_runtime(other, who, runtime, "retired")
        done.set()

    with database.sessions() as db:
        dev = db.scalar(select(Runtime).where(Runtime.runtime_id == dev_id))
        ensure_live(db, dev.id)  # the ask's transaction holds the runtime
        revoker = threading.Thread(target=revoke_dev)
        revoker.start()
        assert not done.wait(1.0)  # the revocation waits for the ask
        service.submit(db, RuntimeRef.of(dev), NewAsk(
            request_id="req_racing", action_hash="e" * 64, tool="Bash"))  # commits
    revoker.join(timeout=20)
    assert done.is_set()
    [ask] = world.ok("admin", "GET", f"/api/v1/teams/{world.ids['team']}/approvals")
    assert (ask["request_id"], ask["state"]) == ("req_racing", "cancelled")


def test_a_revoked_runtime_id_is_never_enrolled_again(world):
    team = world.ids["team"]

    def token() -> str:
        return world.ok("admin", "POST", f"/api/v1/teams/{team}/enrollment-tokens", {},
                        status=201)["token"]

    def enroll(enrollment: str, runtime_id: str):
        return world.client.post("/api/v1/enroll", json={
            "token": enrollment, "runtime_id": runtime_id, "public_key": "ab" * 32})

    first = enroll(token(), "rt_" + "1" * 16)
    assert first.status_code == 201
    world.runtimes["laptop"] = ("rt_" + "1" * 16, first.json()["credential"])
    revoke(world, "laptop")
    fresh = token()
    again = enroll(fresh, "rt_" + "1" * 16)
    assert again.status_code == 409 and "revoked" in again.json()["detail"]
    # The token was not spent on the refusal: the machine's new identity uses it, and gets
    # a new credential; the revoked one stays refused.
    renewed = enroll(fresh, "rt_" + "2" * 16)
    assert renewed.status_code == 201
    assert renewed.json()["credential"] != first.json()["credential"]
    world.runtimes["laptop2"] = ("rt_" + "2" * 16, renewed.json()["credential"])
    assert as_runtime(world, "laptop2", "GET", "/api/v1/runtime/policy").status_code == 204
    assert as_runtime(world, "laptop", "GET", "/api/v1/runtime/policy").status_code == 403


def test_a_revoked_runtime_is_not_reported_silent(world):
    """It is silent because it is refused: the silent-runtime alert skips it."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from runestone_server.alerts.conditions import Conditions, runtime_silent
    from runestone_server.alerts.models import AlertRule
    from runestone_server.models import Runtime

    long_ago = datetime.now(UTC) - timedelta(hours=5)
    with world.app.state.db.sessions() as db:
        db.execute(update(Runtime).values(last_seen=long_ago))
        db.commit()
    revoke(world, "prod")
    with world.app.state.db.sessions() as db:
        org_id = db.scalar(select(Runtime.org_id).where(
            Runtime.runtime_id == world.runtimes["prod"][0]))
        rule = AlertRule(org_id=org_id, team_id=world.ids["team"], name="silent",
                         event="runtime_silent", conditions={"silent_minutes": 60})
        found = list(runtime_silent(db, rule, Conditions.model_validate(rule.conditions),
                                    None, datetime.now(UTC)))
    assert [c.detail["runtime_id"] for c in found] == [world.runtimes["dev"][0]]


# --- end to end: a real server process, the real runtime --------------------------------

V1 = '[policy]\nname = "v1"\ndefault = "ask"\ninclude = ["default"]\n'


def check_json(home: Path, *options: str, command: str = COMMAND) -> dict:
    result = runestone(home, "check", *options, "--command", command)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_revoked_runtime_is_refused_end_to_end(database_url, tmp_path):
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'revoke.sqlite3'}"
    server = ServerProcess(database_url, tmp_path / "server")
    server.init()
    server.start()
    try:
        org = Org(server)
        base, team = server.base, org.team
        laptop = tmp_path / "laptop"
        org.enroll(laptop, {"env": "prod"})
        where = Layout(config_dir=laptop, state_dir=laptop / "state")
        credential = (where.keys_dir / "remote.credential").read_text().strip()
        runtime_id = load_identity(where).runtime_id
        api(base, "POST", f"/api/v1/teams/{team}/policies", org.admin, {"text": V1})
        api(base, "POST", f"/api/v1/teams/{team}/publications", org.admin, {"number": 1})
        assert runestone(laptop, "policy", "pull").returncode == 0
        asked = check_json(laptop, "--approval", "defer")
        assert asked["decision"] == "deny" and "routed to the control plane" in \
            asked["reason"], asked
        open_ask = approval_id_of(asked)
        shipped = runestone(laptop, "audit", "ship")
        assert shipped.returncode == 0, shipped.stderr

        def report() -> dict:
            reports = api(base, "GET", f"/api/v1/teams/{team}/audit/verify", org.admin)
            return next(r for r in reports if r["runtime_id"] == runtime_id)

        before = report()
        assert before["ok"] and before["entries"] > 0, before

        api(base, "POST", REVOKE.format(team=team, runtime=runtime_id), org.admin,
            {"reason": REASON})

        pulled = runestone(laptop, "policy", "pull")
        assert pulled.returncode != 0
        assert "revoked by alice" in pulled.stderr and REASON in pulled.stderr, pulled.stderr
        # A new ask is denied on the machine, with the server's words; none reaches anyone.
        refused = check_json(laptop, "--approval", "defer", command="curl https://e.example")
        assert refused["decision"] == "deny", refused
        assert "HTTP 403" in refused["reason"] and "revoked by alice" in refused["reason"]
        waited = check_json(laptop, "--approval", "wait", "--wait-seconds", "2",
                            command="curl https://f.example")
        assert waited["decision"] == "deny" and "revoked by alice" in waited["reason"]
        # The retry of the open ask is denied with the server's words too: the runtime
        # learns its request is over (the server refuses to say more) instead of pointing
        # at an approval link nobody can use.
        retried = check_json(laptop, "--approval", "defer")
        assert retried["decision"] == "deny", retried
        assert "revoked by alice" in retried["reason"], retried["reason"]
        assert "routed to the control plane" not in retried["reason"], retried["reason"]
        asks = api(base, "GET", f"/api/v1/teams/{team}/approvals", org.admin)
        assert [a["id"] for a in asks] == [open_ask]
        # Its open ask was cancelled, on its timeline.
        detail = api(base, "GET", f"/api/v1/approvals/{open_ask}", org.admin)
        assert detail["state"] == "cancelled" and REASON in detail["decided_reason"]
        # By the revoker's own hook, or by the server's worker if its tick fell between
        # the revocation's commit and that hook (the sweep that finishes a revocation a
        # stopped replica left half done): either way once, on the ask's timeline.
        cancelled = [s["actor"] for s in detail["timeline"] if s["kind"] == "approval.cancelled"]
        assert len(cancelled) == 1 and cancelled[0] in ("user:alice", "server"), cancelled
        # Shipping is refused, and a batch of its real entries sent anyway is not stored.
        ship = runestone(laptop, "audit", "ship")
        assert ship.returncode != 0 and "revoked by alice" in ship.stderr, ship.stderr
        assert "AUDIT REFUSED BY THE CONTROL PLANE" in ship.stderr and \
            "next round" not in ship.stderr
        newer = [e for e in read_entries(where.audit_dir) if e["seq"] > before["head_seq"]]
        assert newer, "the refused checks wrote entries locally"
        status, answer = request(base, "POST", "/api/v1/runtime/audit", credential,
                                 {"entries": newer, "checkpoints": []})
        assert status == 403 and REASON in answer["detail"], answer
        after = report()
        assert (after["ok"], after["status"], after["entries"], after["head_seq"]) == \
            (True, "verified", before["entries"], before["head_seq"]), after
        listed = api(base, "GET", f"/api/v1/teams/{team}/runtimes", org.admin)
        assert [(r["revoked_by"], r["revoked_reason"]) for r in listed] == [("alice", REASON)]

        # The same identity is never enrolled again; the machine comes back under a new one
        # (`init --new-identity`, same home), with the same token.
        token = api(base, "POST", f"/api/v1/teams/{team}/enrollment-tokens", org.admin,
                    {"labels": {"env": "prod"}})["token"]
        again = runestone(laptop, "enroll", "--server", base, "--token", token)
        assert again.returncode != 0 and "revoked" in again.stderr, again.stderr
        assert "runestone init --new-identity" in again.stderr, again.stderr
        old_identity = load_identity(where)
        old_entries = list(read_entries(where.audit_dir))
        renewed = runestone(laptop, "init", "--new-identity")
        assert renewed.returncode == 0, renewed.stderr
        assert f"retired {runtime_id}" in renewed.stdout
        new_id = load_identity(where).runtime_id
        assert new_id != runtime_id
        # Nothing of the old identity is left in use: not enrolled, no team policy, no log.
        assert runestone(laptop, "status").stdout.startswith("policy: local file")
        assert list(read_entries(where.audit_dir)) == []
        # The old chain is kept whole, and still verifies under the old key.
        kept = laptop / "state" / "retired" / runtime_id / "audit"
        assert list(read_entries(kept)) == old_entries
        assert verify_log(kept, runtime_id, old_identity.public_key).ok
        assert (laptop / "retired" / runtime_id / "keys" / "remote.credential").read_text() \
            .strip() == credential

        enrolled = runestone(laptop, "enroll", "--server", base, "--token", token)
        assert enrolled.returncode == 0, enrolled.stderr
        assert (where.keys_dir / "remote.credential").read_text().strip() != credential
        assert runestone(laptop, "policy", "pull").returncode == 0
        assert request(base, "GET", "/api/v1/runtime/policy", credential)[0] == 403
        governed = check_json(laptop, command="git status")  # by the team's policy again
        assert governed["decision"] == "ask" and "default is ask" in governed["reason"]
        assert runestone(laptop, "audit", "ship").returncode == 0
        reports = {r["runtime_id"]: r for r in
                   api(base, "GET", f"/api/v1/teams/{team}/audit/verify", org.admin)}
        assert reports[new_id]["ok"] and reports[new_id]["status"] == "verified"
        assert reports[new_id]["entries"] == len(list(read_entries(where.audit_dir)))
        assert reports[runtime_id]["entries"] == before["entries"]  # the old chain, as it was
    finally:
        server.stop()

