"""Approvals through the server: routing, escalation, quorum, delegation, self-approval,
tenant isolation, signed decisions and the long-poll, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from runestone.audit.checkpoint import verify_signature
from runestone.remote.signing import decision_message
from runestone_server.approvals import wakeups
from runestone_server.approvals.escalation import escalate_due
from runestone_server.approvals.models import ApprovalRoute, ApproverGroup
from runestone_server.approvals.routing import Ask, matches
from runestone_server.models import (
    ApiToken,
    Membership,
    Organisation,
    Runtime,
    ServerEvent,
    Team,
    User,
)
from runestone_server.security import hash_password, new_token

PASSWORD = hash_password("x" * 12)  # hashing once keeps the fixtures fast


@pytest.fixture
def app_client(database_url, tmp_path):
    """The app with no background worker: the tests run escalation themselves."""
    from fastapi.testclient import TestClient

    from runestone_server.app import create_app
    from runestone_server.migrate import upgrade

    app = create_app(database_url, key_path=str(tmp_path / "server.ed25519"),
                     worker_interval=0)
    upgrade(app.state.db)
    with TestClient(app) as client:
        yield app, client
    app.state.db.engine.dispose()


class World:
    """Two organisations, each with a team, people and an enrolled runtime."""

    def __init__(self, app, client) -> None:
        self.app, self.client = app, client
        self.tokens: dict[str, str] = {}
        self.runtimes: dict[str, tuple[str, str]] = {}  # name -> (runtime id, credential)
        self.ids: dict[str, int] = {}

    def user(self, db, org: Organisation, name: str, *, team: Team | None = None,
             role: str | None = None, org_admin: bool = False) -> User:
        user = User(org_id=org.id, username=name, password_hash=PASSWORD, org_admin=org_admin)
        db.add(user)
        db.flush()
        if team is not None and role is not None:
            db.add(Membership(org_id=org.id, team_id=team.id, user_id=user.id, role=role))
        token, digest = new_token("rst")
        db.add(ApiToken(org_id=org.id, user_id=user.id, name="t", token_hash=digest,
                        scopes=["read", "write"], kind="api"))
        self.tokens[name] = token
        self.ids[name] = user.id
        return user

    def runtime(self, db, org: Organisation, team: Team, name: str,
                labels: dict[str, str]) -> None:
        credential, digest = new_token("rsr")
        runtime_id = "rt_" + hashlib.sha256(name.encode()).hexdigest()[:16]
        db.add(Runtime(org_id=org.id, team_id=team.id, runtime_id=runtime_id,
                       public_key="0" * 64, labels=labels, credential_hash=digest))
        self.runtimes[name] = (runtime_id, credential)

    def as_user(self, name: str, method: str, path: str, body=None):
        return self.client.request(method, path, json=body,
                                   headers={"Authorization": f"Bearer {self.tokens[name]}"})

    def ok(self, name: str, method: str, path: str, body=None, status: int = 200):
        response = self.as_user(name, method, path, body)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def ask(self, runtime: str, request_id: str, *, tool: str = "Bash", severity="medium",
            rules=("shell.network",), user: str = "dev1", mode: str = "defer",
            action_hash: str | None = None) -> dict:
        _, credential = self.runtimes[runtime]
        response = self.client.post("/api/v1/runtime/approvals", json={
            "request_id": request_id, "tool": tool, "severity": severity,
            "action_hash": action_hash or hashlib.sha256(request_id.encode()).hexdigest(),
            "summary": f"{tool}: curl https://example.com", "reason": "network access",
            "rules": list(rules), "input": {"command": "curl https://example.com"},
            "user": user, "agent": "claude-code", "mode": mode},
            headers={"Authorization": f"Bearer {credential}"})
        assert response.status_code in (200, 201), response.text
        return response.json()

    def poll(self, runtime: str, request_id: str, wait: float = 0.0):
        _, credential = self.runtimes[runtime]
        return self.client.get(f"/api/v1/runtime/approvals/{request_id}?wait={wait}",
                               headers={"Authorization": f"Bearer {credential}"})

    def group(self, name: str, members: list[str]) -> int:
        return self.ok("admin", "POST", f"/api/v1/teams/{self.ids['team']}/approver-groups",
                       {"name": name, "members": members}, status=201)["id"]

    def route(self, name: str, levels: list[tuple[int, int, int]], **match) -> dict:
        return self.ok("admin", "POST", f"/api/v1/teams/{self.ids['team']}/approval-routes",
                       {"name": name, **match, "levels": [
                           {"group_id": g, "timeout_seconds": t, "quorum": q}
                           for g, t, q in levels]}, status=201)

    def vote(self, name: str, approval_id: int, vote: str = "approve", reason: str = ""):
        return self.as_user(name, "POST", f"/api/v1/approvals/{approval_id}/votes",
                            {"vote": vote, "reason": reason})

    def events(self, request_id: str) -> list[str]:
        with self.app.state.db.sessions() as db:
            rows = db.scalars(select(ServerEvent).where(
                ServerEvent.detail["request_id"].as_string() == request_id)
                .order_by(ServerEvent.id))
            return [e.kind for e in rows]

    def escalate(self) -> int:
        return escalate_due(self.app.state.db)


@pytest.fixture
def world(app_client):
    app, client = app_client
    w = World(app, client)
    with app.state.db.sessions() as db:
        a, b = Organisation(name="acme"), Organisation(name="other")
        db.add_all([a, b])
        db.flush()
        team, b_team = Team(org_id=a.id, name="core"), Team(org_id=b.id, name="core")
        db.add_all([team, b_team])
        db.flush()
        w.ids["team"], w.ids["b_team"] = team.id, b_team.id
        w.user(db, a, "admin", team=team, role="admin")
        for name in ("ops1", "ops2", "lead1", "lead2", "sec1", "dev1", "carol"):
            w.user(db, a, name, team=team, role="approver" if name != "carol" else "member")
        w.user(db, a, "stranger")  # in the organisation, in no team or group
        w.user(db, b, "b-admin", team=b_team, role="admin", org_admin=True)
        w.user(db, b, "b-ops", team=b_team, role="approver")
        w.runtime(db, a, team, "prod", {"env": "prod", "user": "dev1", "host": "p1"})
        w.runtime(db, a, team, "dev", {"env": "dev", "user": "dev1", "host": "d1"})
        w.runtime(db, b, b_team, "b-prod", {"env": "prod", "user": "b-dev"})
        db.commit()
    return w


def test_route_matching_rules():
    route = ApprovalRoute(match_labels={"env": "prod"}, tool_glob="Bash", rule_glob="net.*",
                          min_severity="high")
    ask = Ask(labels={"env": "prod", "host": "x"}, tool="Bash", rules=("fs.read", "net.curl"),
              severity="high")
    assert matches(route, ask)
    assert not matches(route, Ask({"env": "dev"}, "Bash", ("net.curl",), "high"))
    assert not matches(route, Ask({"env": "prod"}, "Write", ("net.curl",), "high"))
    assert not matches(route, Ask({"env": "prod"}, "Bash", ("fs.read",), "critical"))
    assert not matches(route, Ask({"env": "prod"}, "Bash", ("net.curl",), "medium"))
    assert matches(route, Ask({"env": "prod"}, "Bash", ("net.curl",), "critical"))
    assert matches(route, Ask({"env": "prod"}, "Bash", ("net.curl",), "unheard-of"))


def test_asks_are_routed_to_the_right_group(world):
    ops = world.group("prod-oncall", ["ops1", "ops2"])
    sec = world.group("security", ["sec1"])
    general = world.group("general", ["lead1"])
    world.route("catch-all", [(general, 600, 1)], priority=100)
    world.route("prod-shell", [(ops, 600, 1)], priority=10, labels={"env": "prod"},
                tool="Bash")
    world.route("critical", [(sec, 600, 1)], priority=5, min_severity="critical")
    cases = {
        "req_prod_bash": ("prod", "Bash", "medium", "prod-oncall"),
        "req_prod_critical": ("prod", "Bash", "critical", "security"),
        "req_prod_write": ("prod", "Write", "medium", "general"),
        "req_dev_bash": ("dev", "Bash", "medium", "general"),
    }
    for request_id, (runtime, tool, severity, _) in cases.items():
        world.ask(runtime, request_id, tool=tool, severity=severity)
    inbox = {name: {a["request_id"] for a in world.ok(name, "GET", "/api/v1/approvals")}
             for name in ("ops1", "sec1", "lead1", "dev1")}
    assert inbox == {"ops1": {"req_prod_bash"}, "sec1": {"req_prod_critical"},
                     "lead1": {"req_prod_write", "req_dev_bash"}, "dev1": set()}
    for request_id, (*_, group) in cases.items():
        approval = world.ask("prod" if "prod" in request_id else "dev", request_id,
                             tool=cases[request_id][1], severity=cases[request_id][2])
        detail = world.ok("admin", "GET", f"/api/v1/approvals/{approval['id']}")
        assert detail["levels"][0]["group"] == group
        assert [s["kind"] for s in detail["timeline"]] == ["approval.requested",
                                                           "approval.notified"]
        assert detail["timeline"][1]["detail"]["group"] == group
    # The catch-all is removed: asks already on it carry on, new ones no longer take it.
    routes = world.ok("admin", "GET", f"/api/v1/teams/{world.ids['team']}/approval-routes")
    catch_all = next(r for r in routes if r["name"] == "catch-all")
    assert world.as_user("lead1", "DELETE", f"/api/v1/teams/{world.ids['team']}"
                         f"/approval-routes/{catch_all['id']}").status_code == 403
    assert world.as_user("admin", "DELETE", f"/api/v1/teams/{world.ids['team']}"
                         f"/approval-routes/{catch_all['id']}").status_code == 204
    assert "catch-all" not in [r["name"] for r in world.ok(
        "admin", "GET", f"/api/v1/teams/{world.ids['team']}/approval-routes")]
    on_it = world.ask("prod", "req_prod_write")["id"]
    assert world.vote("lead1", on_it).json()["state"] == "approved"
    # Without any matching route the team's approvers decide (fallback, quorum one).
    fallback = world.ask("dev", "req_fallback", tool="Write")
    assert fallback["id"] in {a["id"] for a in world.ok("ops2", "GET", "/api/v1/approvals")}
    assert world.vote("carol", fallback["id"]).status_code == 403  # a member, not approver
    assert world.vote("ops2", fallback["id"]).json()["state"] == "approved"


def test_escalation_after_timeout_then_expiry_claimed_once(world):
    first = world.group("first", ["ops1"])
    second = world.group("second", ["lead1"])
    world.route("escalating", [(first, 1, 1), (second, 1, 1)])
    approval = world.ask("prod", "req_escalate")
    assert world.escalate() == 0  # not due yet
    time.sleep(1.1)
    # Two replicas tick at once: exactly one moves the request.
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(world.escalate()))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]
    detail = world.ok("admin", "GET", f"/api/v1/approvals/{approval['id']}")
    assert (detail["state"], detail["level"]) == ("pending", 1)
    assert world.events("req_escalate").count("approval.escalated") == 1
    assert [a["id"] for a in world.ok("lead1", "GET", "/api/v1/approvals")] == [approval["id"]]
    assert world.ok("ops1", "GET", "/api/v1/approvals") == []
    assert world.vote("ops1", approval["id"]).status_code == 403  # level 1 has moved on
    time.sleep(1.1)
    assert world.escalate() == 1
    assert world.escalate() == 0
    view = world.poll("prod", "req_escalate").json()
    assert view["state"] == "expired"
    assert world.vote("lead1", approval["id"]).status_code == 409
    assert world.events("req_escalate") == [
        "approval.requested", "approval.notified", "approval.escalated", "approval.notified",
        "approval.expired"]


def test_quorum_needs_two_distinct_approvers_and_one_deny_denies(world):
    leads = world.group("leads", ["lead1", "lead2", "ops1"])
    world.route("two-leads", [(leads, 600, 2)])
    approval = world.ask("prod", "req_quorum")
    first = world.vote("lead1", approval["id"], reason="looks fine")
    assert first.status_code == 200 and first.json()["state"] == "pending"
    again = world.vote("lead1", approval["id"])
    assert again.status_code == 409  # the same person twice counts once
    assert world.ok("admin", "GET", f"/api/v1/approvals/{approval['id']}")["state"] == \
        "pending"
    second = world.vote("lead2", approval["id"])
    assert second.json()["state"] == "approved"
    assert [v["user"] for v in second.json()["votes"]] == ["lead1", "lead2"]
    view = world.poll("prod", "req_quorum").json()
    assert view["approvers"] == ["lead1", "lead2"]

    denied = world.ask("prod", "req_one_deny")
    world.vote("lead1", denied["id"])
    answer = world.vote("ops1", denied["id"], "deny", reason="not on a Friday")
    assert answer.json()["state"] == "denied"
    assert answer.json()["decided_reason"] == "not on a Friday"
    assert world.vote("lead2", denied["id"]).status_code == 409


def test_an_approval_by_someone_who_left_the_group_no_longer_counts(world):
    leads = world.group("leads", ["lead1", "lead2", "ops1"])
    world.route("two-leads", [(leads, 600, 2)])
    approval = world.ask("prod", "req_left")
    assert world.vote("lead1", approval["id"]).json()["state"] == "pending"
    world.ok("admin", "POST", f"/api/v1/teams/{world.ids['team']}/approver-groups",
             {"name": "leads", "members": ["lead2", "ops1"]})  # lead1 leaves
    assert world.vote("lead2", approval["id"]).json()["state"] == "pending"
    assert world.vote("ops1", approval["id"]).json()["state"] == "approved"


def test_delegation_lets_another_user_decide_for_a_period(world):
    ops = world.group("ops", ["ops1", "ops2"])
    world.route("ops-two", [(ops, 600, 2)])
    approval = world.ask("prod", "req_delegated")
    assert world.vote("carol", approval["id"]).status_code == 403  # not (yet) a delegate
    now = datetime.now(UTC)
    east = timezone(timedelta(hours=5))  # a zoned period compares right on both databases
    made = world.ok("ops1", "POST", "/api/v1/delegations", {
        "to": "carol", "starts": (now - timedelta(minutes=30)).astimezone(east).isoformat(),
        "ends": (now + timedelta(hours=1)).astimezone(east).isoformat()}, status=201)
    assert (made["from"], made["to"]) == ("ops1", "carol")
    assert [a["id"] for a in world.ok("carol", "GET", "/api/v1/approvals")] == [approval["id"]]
    # ops1 votes, and carol votes on ops1's behalf: one person, one vote.
    world.vote("ops1", approval["id"])
    stand_in = world.vote("carol", approval["id"])
    assert stand_in.status_code == 200 and stand_in.json()["state"] == "pending"
    assert stand_in.json()["votes"][-1]["on_behalf_of"] == "ops1"
    assert world.vote("ops2", approval["id"]).json()["state"] == "approved"
    # Issue 17: the compliance report lost the delegation; it names who stood in for whom.
    report = world.ok("admin", "GET", f"/api/v1/teams/{world.ids['team']}/audit/report?"
                      f"since={(now - timedelta(hours=1)).isoformat().replace('+', '%2B')}")
    decided = [i for i in report["approvals"]["items"]
               if i["request_id"] == "req_delegated"]
    assert decided and decided[0]["approvers"] == ["ops1", "carol", "ops2"]
    assert decided[0]["delegated"] == [{"approver": "carol", "for": "ops1"}]

    # A revoked or not yet started delegation gives nothing.
    world.as_user("ops1", "DELETE", f"/api/v1/delegations/{made['id']}")
    later = world.ask("prod", "req_after_revoke")
    assert world.vote("carol", later["id"]).status_code == 403
    world.ok("ops2", "POST", "/api/v1/delegations", {
        "to": "carol", "starts": (now + timedelta(hours=1)).isoformat(),
        "ends": (now + timedelta(hours=2)).isoformat()}, status=201)
    assert world.vote("carol", later["id"]).status_code == 403
    assert world.as_user("carol", "DELETE", f"/api/v1/delegations/{made['id']}"
                         ).status_code == 404  # only the delegator revokes


def test_nobody_approves_their_own_agents_request(world):
    ops = world.group("ops", ["dev1", "ops1"])
    world.route("ops", [(ops, 600, 1)])
    approval = world.ask("prod", "req_self", user="dev1")
    refused = world.vote("dev1", approval["id"])
    assert refused.status_code == 403 and "own agent" in refused.json()["detail"]
    # Not through a stand-in either.
    world.ok("dev1", "POST", "/api/v1/delegations", {
        "to": "carol", "ends": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        status=201)
    assert world.vote("carol", approval["id"]).status_code == 403
    assert world.ok("admin", "GET", f"/api/v1/approvals/{approval['id']}")["state"] == \
        "pending"
    assert world.vote("ops1", approval["id"]).json()["state"] == "approved"


def test_a_user_name_sent_for_the_call_does_not_hide_the_enrolled_user(world):
    """The prod runtime was enrolled for dev1; an agent there that says it runs as someone
    else still cannot have dev1 approve it."""
    ops = world.group("ops", ["dev1", "ops1"])
    world.route("ops", [(ops, 600, 1)])
    approval = world.ask("prod", "req_disguised", user="somebody-else")
    refused = world.vote("dev1", approval["id"])
    assert refused.status_code == 403 and "own agent" in refused.json()["detail"]
    assert world.vote("ops1", approval["id"]).json()["state"] == "approved"


def test_tenants_never_see_each_others_approvals(world):
    ops = world.group("ops", ["ops1"])
    world.route("ops", [(ops, 600, 1)])
    approval = world.ask("prod", "req_tenant")
    b_approval = world.ask("b-prod", "req_tenant")  # same request id, other tenant
    assert b_approval["id"] != approval["id"]
    for caller in ("b-admin", "b-ops"):
        assert world.as_user(caller, "GET", f"/api/v1/approvals/{approval['id']}"
                             ).status_code == 404
        assert world.vote(caller, approval["id"]).status_code == 404
        assert world.ok(caller, "GET", "/api/v1/approvals") == [] or all(
            a["id"] != approval["id"] for a in world.ok(caller, "GET", "/api/v1/approvals"))
    # An org member who is in neither the team nor the group does not see it either.
    assert world.as_user("stranger", "GET", f"/api/v1/approvals/{approval['id']}"
                         ).status_code == 404
    assert world.as_user("ops1", "GET", f"/api/v1/approvals/{b_approval['id']}"
                         ).status_code == 404
    team = world.ids["team"]
    assert world.as_user("b-admin", "GET", f"/api/v1/teams/{team}/approvals").status_code == 404
    # Configuration cannot point across tenants.
    bad = world.as_user("admin", "POST", f"/api/v1/teams/{team}/approver-groups",
                        {"name": "x", "members": ["b-ops"]})
    assert bad.status_code == 400
    b_group = world.as_user("b-admin", "POST",
                            f"/api/v1/teams/{world.ids['b_team']}/approver-groups",
                            {"name": "b", "members": ["b-ops"]}).json()["id"]
    assert world.as_user("admin", "POST", f"/api/v1/teams/{team}/approval-routes", {
        "name": "x", "levels": [{"group_id": b_group, "timeout_seconds": 5}]}
    ).status_code == 400
    assert world.as_user("admin", "POST", "/api/v1/delegations", {
        "to": "b-ops", "ends": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    ).status_code == 400
    # A runtime reads only its own requests.
    assert world.poll("dev", "req_tenant").status_code == 404
    assert world.poll("prod", "req_tenant").json()["id"] == approval["id"]


def test_decisions_are_signed_for_the_runtime_and_bound_to_its_action(world):
    ops = world.group("ops", ["ops1"])
    world.route("ops", [(ops, 600, 1)])
    action_hash = hashlib.sha256(b"the action").hexdigest()
    approval = world.ask("prod", "req_signed", action_hash=action_hash)
    assert world.poll("prod", "req_signed").json()["signature"] == ""  # pending: nothing
    world.vote("ops1", approval["id"])
    view = world.poll("prod", "req_signed").json()
    runtime_id, credential = world.runtimes["prod"]
    public = world.app.state.key.public_hex
    credential_hash = hashlib.sha256(credential.encode()).hexdigest()

    def signed(**change) -> bool:
        fields = {"runtime_id": runtime_id, "request_id": "req_signed",
                  "action_hash": action_hash, "decision": "approved",
                  "credential_hash": credential_hash, **change}
        return verify_signature(public, decision_message(**fields), view["signature"])

    assert view["state"] == "approved" and signed()
    assert not signed(action_hash="0" * 64)
    assert not signed(decision="denied")
    assert not signed(request_id="req_other")
    assert not signed(credential_hash=hashlib.sha256(b"another runtime").hexdigest())
    # The same request id asked again for another action is refused, not overwritten.
    response = world.client.post("/api/v1/runtime/approvals", json={
        "request_id": "req_signed", "tool": "Bash", "action_hash": "1" * 64},
        headers={"Authorization": f"Bearer {credential}"})
    assert response.status_code == 409
    assert world.client.get("/api/v1/runtime/approvals/req_signed").status_code == 401


def test_long_poll_answers_as_soon_as_it_is_decided(world):
    ops = world.group("ops", ["ops1"])
    world.route("ops", [(ops, 600, 1)])
    approval = world.ask("prod", "req_long_poll")
    started = time.monotonic()
    assert world.poll("prod", "req_long_poll", wait=0.5).json()["state"] == "pending"
    assert time.monotonic() - started >= 0.5
    timer = threading.Timer(0.7, lambda: world.vote("ops1", approval["id"]))
    timer.start()
    started = time.monotonic()
    view = world.poll("prod", "req_long_poll", wait=20).json()
    elapsed = time.monotonic() - started
    timer.join()
    assert view["state"] == "approved"
    assert 0.6 < elapsed < 3.0, elapsed


def test_host_asks_are_recorded_and_abandoned_asks_withdrawn(world):
    ops = world.group("ops", ["ops1"])
    world.route("ops", [(ops, 600, 1)])
    world.ask("prod", "req_host", mode="ask")
    assert world.ok("ops1", "GET", "/api/v1/approvals") == []
    assert world.events("req_host") == ["approval.requested"]
    assert world.poll("prod", "req_host").json()["state"] == "host"
    # A runtime whose wait ran out withdraws its ask; only its own, only while pending.
    approval = world.ask("prod", "req_gave_up", mode="wait")
    _, dev_credential = world.runtimes["dev"]
    assert world.client.post("/api/v1/runtime/approvals/req_gave_up/cancel", headers={
        "Authorization": f"Bearer {dev_credential}"}).status_code == 404
    _, credential = world.runtimes["prod"]
    cancelled = world.client.post("/api/v1/runtime/approvals/req_gave_up/cancel",
                                  headers={"Authorization": f"Bearer {credential}"})
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["signature"]
    assert world.ok("ops1", "GET", "/api/v1/approvals") == []
    assert world.vote("ops1", approval["id"]).status_code == 409
    assert world.events("req_gave_up")[-1] == "approval.cancelled"


def test_postgres_notifications_wake_other_replicas(database_url):
    """A decision taken on another replica reaches a waiter through LISTEN/NOTIFY, long
    before its safety re-check."""
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    import psycopg

    async def waiter() -> float:
        started = time.monotonic()
        await wakeups.wait(database_url, 424242, 10.0)
        return time.monotonic() - started

    woken = threading.Event()

    def notify_later() -> None:
        time.sleep(0.5)
        with psycopg.connect(database_url, autocommit=True) as other_replica:
            while not woken.is_set():  # again until heard: the listener may still connect
                other_replica.execute("SELECT pg_notify(%s, %s)", (wakeups.CHANNEL, "424242"))
                woken.wait(0.2)

    thread = threading.Thread(target=notify_later)
    thread.start()
    try:
        elapsed = asyncio.run(waiter())
    finally:
        woken.set()
        thread.join()
    assert 0.4 < elapsed < wakeups.POSTGRES_RECHECK - 1, elapsed


# --- the scope of an approval -----------------------------------------------------------

def _scoped(world, name: str, approval_id: int, scope: str, minutes: int = 30):
    return world.as_user(name, "POST", f"/api/v1/approvals/{approval_id}/votes",
                         {"vote": "approve", "scope": scope, "minutes": minutes})


def _signed_scope(world, request_id: str, view: dict, scope: str, minutes: int) -> bool:
    runtime_id, credential = world.runtimes["prod"]
    return verify_signature(world.app.state.key.public_hex, decision_message(
        runtime_id, request_id, hashlib.sha256(request_id.encode()).hexdigest(), view["state"],
        hashlib.sha256(credential.encode()).hexdigest(), scope, minutes), view["signature"])


def test_the_decided_scope_is_the_narrowest_approval_at_the_deciding_level(world):
    ops = world.group("ops", ["ops1", "ops2"])
    world.route("ops-two", [(ops, 600, 2)])
    # One "once" and one "rule-session": once.
    mixed = world.ask("prod", "req_scope_mixed")
    assert _scoped(world, "ops1", mixed["id"], "rule-session", 60).json()["state"] == "pending"
    decided = _scoped(world, "ops2", mixed["id"], "once").json()
    assert (decided["state"], decided["scope"], decided["scope_minutes"]) == \
        ("approved", "once", 0)
    assert [(v["user"], v["scope"], v["minutes"]) for v in decided["votes"]] == \
        [("ops1", "rule-session", 60), ("ops2", "once", 0)]
    view = world.poll("prod", "req_scope_mixed").json()
    assert (view["scope"], view["minutes"]) == ("once", 0)
    assert _signed_scope(world, "req_scope_mixed", view, "once", 0)
    assert not _signed_scope(world, "req_scope_mixed", view, "rule-session", 60)
    # Both for the session: the fewer minutes.
    both = world.ask("prod", "req_scope_both")
    _scoped(world, "ops1", both["id"], "rule-session", 60)
    decided = _scoped(world, "ops2", both["id"], "rule-session", 20).json()
    assert (decided["scope"], decided["scope_minutes"]) == ("rule-session", 20)
    view = world.poll("prod", "req_scope_both").json()
    assert (view["state"], view["scope"], view["minutes"]) == ("approved", "rule-session", 20)
    assert _signed_scope(world, "req_scope_both", view, "rule-session", 20)
    assert not _signed_scope(world, "req_scope_both", view, "rule-session", 60)
    assert not _signed_scope(world, "req_scope_both", view, "once", 0)
    steps = {s["kind"]: s["detail"] for s in decided["timeline"]}
    assert (steps["approval.decided"]["scope"], steps["approval.decided"]["minutes"]) == \
        ("rule-session", 20)
    # A deny carries no scope, and a denied request signs "once".
    denied = world.ask("prod", "req_scope_denied")
    _scoped(world, "ops1", denied["id"], "rule-session", 60)
    answer = world.as_user("ops2", "POST", f"/api/v1/approvals/{denied['id']}/votes",
                           {"vote": "deny", "scope": "rule-session", "minutes": 60}).json()
    assert (answer["state"], answer["scope"], answer["votes"][-1]["scope"]) == \
        ("denied", "once", "once")
    view = world.poll("prod", "req_scope_denied").json()
    assert _signed_scope(world, "req_scope_denied", view, "once", 0)


def test_rule_session_is_refused_for_a_request_with_no_rules(world):
    ops = world.group("ops", ["ops1"])
    world.route("ops", [(ops, 600, 1)])
    opaque = world.ask("prod", "req_scope_opaque", rules=())
    refused = _scoped(world, "ops1", opaque["id"], "rule-session", 30)
    assert refused.status_code == 400 and "only this exact action" in refused.text
    for bad in ({"scope": "everything"}, {"scope": "rule-session", "minutes": 0},
                {"scope": "rule-session", "minutes": 481}):
        response = world.as_user("ops1", "POST", f"/api/v1/approvals/{opaque['id']}/votes",
                                 {"vote": "approve", **bad})
        assert response.status_code == 422, bad
    assert world.ok("admin", "GET", f"/api/v1/approvals/{opaque['id']}")["votes"] == []
    once = _scoped(world, "ops1", opaque["id"], "once")
    assert once.status_code == 200 and once.json()["state"] == "approved"
    assert once.json()["scope"] == "once"


def test_the_approval_page_offers_and_posts_the_scope(world):
    """The form's radio buttons and minutes reach the vote; rule-session is offered only
    for a request asked by rules; the page shows the scope in the votes and timeline."""
    import re

    from fastapi.testclient import TestClient

    ops = world.group("ops", ["ops1"])
    world.route("ops", [(ops, 600, 1)])
    ruled = world.ask("prod", "req_scope_web")
    opaque = world.ask("prod", "req_scope_web_opaque", rules=())
    with TestClient(world.app) as browser:
        form = browser.get("/login").text
        token = re.search(r'name="csrf" value="([0-9a-f]{64})"', form).group(1)
        signed_in = browser.post("/login", data={
            "csrf": token, "organisation": "acme", "username": "ops1",
            "password": "x" * 12, "next": "/"}, follow_redirects=False)
        assert signed_in.status_code == 303, signed_in.text
        page = browser.get(f"/approvals/{opaque['id']}").text
        assert 'value="once"' in page and 'value="rule-session"' not in page
        page = browser.get(f"/approvals/{ruled['id']}").text
        assert 'value="rule-session"' in page and 'name="minutes"' in page
        token = re.search(r'name="csrf" value="([0-9a-f]{64})"', page).group(1)
        # Refused scopes come back as the page with the reason, nothing recorded.
        refused = browser.post(f"/approvals/{opaque['id']}/vote", data={
            "csrf": token, "vote": "approve", "scope": "rule-session", "minutes": "30"})
        assert refused.status_code == 400 and "only this exact action" in refused.text
        too_long = browser.post(f"/approvals/{ruled['id']}/vote", data={
            "csrf": token, "vote": "approve", "scope": "rule-session", "minutes": "481"})
        assert too_long.status_code == 400 and "1 to 480 minutes" in too_long.text
        voted = browser.post(f"/approvals/{ruled['id']}/vote", data={
            "csrf": token, "vote": "approve", "scope": "rule-session", "minutes": "45",
            "reason": "deploy window"}, follow_redirects=False)
        assert voted.status_code == 303, voted.text
        page = browser.get(f"/approvals/{ruled['id']}").text
    assert "ops1: <strong>approve</strong> (rules for the session, 45 min)" in page
    assert 'id="scope"' in page and "for 45 minutes" in page
    timeline = page.split('id="timeline"', 1)[1]
    assert "<strong>decided</strong> by" in timeline and "rules for the session, 45" in timeline
    view = world.poll("prod", "req_scope_web").json()
    assert (view["state"], view["scope"], view["minutes"]) == ("approved", "rule-session", 45)


def test_a_group_no_route_names_can_be_deleted_by_managers_only(world):
    team = world.ids["team"]
    used = world.group("oncall", ["ops1"])
    world.route("prod", [(used, 60, 1)], labels={"env": "prod"})
    spare = world.group("spare", ["ops2"])
    path = f"/api/v1/teams/{team}/approver-groups"
    for name in ("ops1", "carol", "stranger"):  # an approver, a member, a non-member
        assert world.as_user(name, "DELETE", f"{path}/{spare}").status_code in (403, 404)
    assert world.as_user("b-admin", "DELETE", f"{path}/{spare}").status_code == 404
    refused = world.as_user("admin", "DELETE", f"{path}/{used}")
    assert refused.status_code == 409 and "prod" in refused.json()["detail"]
    world.ok("admin", "DELETE", f"{path}/{spare}", status=204)
    assert [g["name"] for g in world.ok("admin", "GET", path)] == ["oncall"]
    assert world.as_user("admin", "DELETE", f"{path}/{spare}").status_code == 404


def test_a_group_is_told_through_its_own_teams_channels_only(world):
    """Another team's channel would carry this team's asks (commands, paths, who asked) to
    people outside it; alert rules and the fallback channels refuse it too."""
    from runestone_server.notify.models import Channel

    with world.app.state.db.sessions() as db:
        core = db.get(Team, world.ids["team"])
        other = Team(org_id=core.org_id, name="payments")
        db.add(other)
        db.flush()
        own = Channel(org_id=core.org_id, team_id=core.id, name="core-mail", kind="email",
                      target="core@example.org")
        theirs = Channel(org_id=core.org_id, team_id=other.id, name="pay-mail", kind="email",
                         target="pay@example.org")
        db.add_all([own, theirs])
        db.commit()
        own_id, theirs_id = own.id, theirs.id
    groups = f"/api/v1/teams/{world.ids['team']}/approver-groups"
    refused = world.as_user("admin", "POST", groups, {"name": "leaky", "members": ["ops1"],
                                                      "channel_ids": [theirs_id]})
    assert refused.status_code == 400 and "in this team" in refused.text, refused.text
    saved = world.ok("admin", "POST", groups, {"name": "oncall", "members": ["ops1"],
                                               "channel_ids": [own_id]}, status=201)
    assert saved["channel_ids"] == [own_id]


def test_a_deleted_channel_is_forgotten_and_its_id_never_reaches_another_team(world):
    """Groups, the fallback and alert rules keep channel ids in JSON lists. Deleting the
    channel takes the id out of all three; and should an id linger (or SQLite give the
    highest deleted id to the next channel, as it does), the outbox still sends a team's asks
    only to that team's own channels."""
    from runestone_server.notify.models import Channel, Delivery

    team = world.ids["team"]
    channels = f"/api/v1/teams/{team}/channels"
    made = world.ok("admin", "POST", channels, {"name": "oncall", "kind": "email",
                                                "target": "oncall@example.org"}, status=201)
    kept = world.ok("admin", "POST", channels, {"name": "leads", "kind": "email",
                                                "target": "leads@example.org"}, status=201)
    gone, stays = made["id"], kept["id"]
    ops = world.group("ops", ["ops1"])
    world.ok("admin", "PUT", f"/api/v1/teams/{team}/approver-groups/{ops}",
             {"name": "ops", "members": ["ops1"], "channel_ids": [gone, stays]})
    world.ok("admin", "PUT", f"/api/v1/teams/{team}/approval-settings",
             {"fallback_channel_ids": [stays, gone]})
    rule = world.ok("admin", "POST", f"/api/v1/teams/{team}/alert-rules",
                    {"name": "denies", "event": "deny", "channel_ids": [gone]}, status=201)

    assert world.as_user("admin", "DELETE", f"{channels}/{gone}").status_code == 204
    group = next(g for g in world.ok("admin", "GET", f"/api/v1/teams/{team}/approver-groups")
                 if g["id"] == ops)
    assert group["channel_ids"] == [stays]
    assert world.ok("admin", "GET", f"/api/v1/teams/{team}/approval-settings")[
        "fallback_channel_ids"] == [stays]
    rules = world.ok("admin", "GET", f"/api/v1/teams/{team}/alert-rules")
    assert next(r for r in rules if r["id"] == rule["id"])["channel_ids"] == []

    # An id left behind anyway (written before this fix, or by hand) names another team's
    # channel now: the ask goes to this team's channels only.
    with world.app.state.db.sessions() as db:
        core = db.get(Team, team)
        other = Team(org_id=core.org_id, name="payments")
        db.add(other)
        db.flush()
        theirs = Channel(org_id=core.org_id, team_id=other.id, name="pay", kind="email",
                         target="pay@example.org")
        db.add(theirs)
        db.flush()
        group_row = db.get(ApproverGroup, ops)
        group_row.channel_ids = [theirs.id, stays]
        db.commit()
        theirs_id = theirs.id
    world.route("ops", [(ops, 600, 1)])
    world.ask("prod", "req_after_delete")
    with world.app.state.db.sessions() as db:
        told = sorted(d.channel_id for d in db.scalars(select(Delivery)))
        notified = db.scalar(select(ServerEvent).where(
            ServerEvent.kind == "approval.notified",
            ServerEvent.detail["request_id"].as_string() == "req_after_delete"))
        assert notified is not None
        assert notified.detail["channels"] == [stays]
        assert notified.detail["errors"] == [f"no notification channel {theirs_id} in this team"]
    assert told == [stays]


def test_a_vote_left_unsettled_by_a_crash_is_settled_by_the_worker(world):
    """What a server killed between committing a vote and settling it leaves behind: the
    vote that decides the request, and the request still pending. The worker decides it;
    a vote short of the quorum is left pending."""
    from runestone_server.approvals.models import ApprovalRequest, ApprovalVote
    from runestone_server.approvals.unsettled import settle_unsettled

    ops = world.group("ops", ["ops1", "ops2"])
    world.route("ops-one", [(ops, 600, 1)], rules=["shell.network"])
    approval = world.ask("prod", "req_crashed")
    with world.app.state.db.sessions() as db:
        db.add(ApprovalVote(org_id=db.get(ApprovalRequest, approval["id"]).org_id,
                            approval_id=approval["id"], level=0, user_id=world.ids["ops1"],
                            vote="approve", reason="fine", scope="once", minutes=0,
                            created=datetime.now(UTC)))
        db.commit()
    assert world.poll("prod", "req_crashed").json()["state"] == "pending"
    assert world.vote("ops1", approval["id"]).status_code == 409  # already voted
    assert settle_unsettled(world.app.state.db) == 1
    assert settle_unsettled(world.app.state.db) == 0
    view = world.poll("prod", "req_crashed").json()
    assert (view["state"], view["approvers"]) == ("approved", ["ops1"])
    assert world.events("req_crashed")[-1] == "approval.decided"


def test_the_stored_approval_input_is_bounded_whatever_the_runtime_sends(world):
    """Issue 17: the input an ask carries is stored and shown cut to MAX_SHOWN, with a
    note, even from a runtime that does not cut it itself (within the 1 MiB body)."""
    import json

    from runestone.bounded import MAX_SHOWN

    _, credential = world.runtimes["prod"]
    response = world.client.post("/api/v1/runtime/approvals", json={
        "request_id": "req_big", "tool": "Write", "action_hash": "a" * 64,
        "input": {"tool": "Write", "input": {"file_path": "/p/x", "content": "B" * 900_000}},
        "user": "dev1", "mode": "defer"}, headers={"Authorization": f"Bearer {credential}"})
    assert response.status_code == 201, response.text
    shown = world.ok("ops1", "GET", f"/api/v1/approvals/{response.json()['id']}")["input"]
    assert len(json.dumps(shown)) <= MAX_SHOWN
    assert shown["input"]["content"].startswith("B" * 4096 + " [... 895904 more characters")


POISONS = ["NaN", "Infinity", "-Infinity", "1e999", '"\\ud800"', '"x\\udfffy"',
           '{"\\udbff": 1}', "[" * 70 + "]" * 70, '"\\u0000"', '"ok"', "-0.0", "1e308",
           '"\\ud83d\\ude00"', "123456789012345678901234567890"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                         allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4), max_leaves=20)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON_VALUES, poison=st.sampled_from(POISONS),
       field=st.sampled_from(["input", "summary", "reason", "user", "agent", "session"]))
def test_no_ask_makes_a_server_error_now_or_when_it_is_read(world, value, poison, field):
    """Issue 17, as an attacker holding a runtime credential: any JSON value in an ask,
    with NaN, Infinity, a number too large, a lone surrogate (in a value or a key), deep
    nesting or a NUL put in, is refused with a 4xx or stored; and what is stored reads
    back (the detail and the team's list) without a server error."""
    import hashlib
    import json

    _, credential = world.runtimes["prod"]
    request_id = "fuzz_" + hashlib.sha256(repr((value, poison, field)).encode()).hexdigest()[:20]
    ask = {"request_id": request_id, "tool": "Bash", "action_hash": "c" * 64,
           "user": "dev1", "mode": "defer", "summary": "s", "reason": "r",
           "input": {"v": value, "p": "POISON"}}
    if field != "input":
        ask["input"] = {"v": value}
        ask[field] = "POISON"
    body = json.dumps(ask).replace('"POISON"', poison)
    answer = world.client.post("/api/v1/runtime/approvals", content=body, headers={
        "Authorization": f"Bearer {credential}", "Content-Type": "application/json"})
    assert answer.status_code in (200, 201, 400, 422), (answer.status_code, body[:300])
    if answer.status_code >= 400:
        return
    approval = answer.json()["id"]
    assert world.as_user("ops1", "GET", f"/api/v1/approvals/{approval}").status_code == 200
    listed = world.as_user("ops1", "GET", f"/api/v1/teams/{world.ids['team']}/approvals")
    assert listed.status_code == 200


def test_the_agents_stated_purpose_reaches_the_approvers_labelled(world):
    """Issue 17: Claude Code's `description` was kept but no approver saw it. The API, the
    notification's text and data carry it, labelled as the agent's own words."""
    from runestone_server.approvals.purpose import LABEL
    from runestone_server.notify.models import Channel, Delivery

    with world.app.state.db.sessions() as db:
        channel = Channel(org_id=db.get(Team, world.ids["team"]).org_id,
                          team_id=world.ids["team"], name="mail", kind="email",
                          target="ops@example.org")
        db.add(channel)
        db.commit()
        channel_id = channel.id
    group = world.ok("admin", "POST", f"/api/v1/teams/{world.ids['team']}/approver-groups",
                     {"name": "oncall", "members": ["ops1"], "channel_ids": [channel_id]},
                     status=201)["id"]
    world.route("all", [(group, 600, 1)])
    said = "Rotate the staging certificates before they expire"
    _, credential = world.runtimes["prod"]
    made = world.client.post("/api/v1/runtime/approvals", headers={
        "Authorization": f"Bearer {credential}"}, json={
        "request_id": "req_purpose", "action_hash": "d" * 64, "tool": "Bash",
        "summary": "openssl x509 -req", "rules": ["shell.network"], "mode": "defer",
        "input": {"tool": "Bash", "cwd": "/p",
                  "input": {"command": "openssl x509 -req", "description": said}}})
    assert made.status_code == 201, made.text
    assert world.ok("ops1", "GET", f"/api/v1/approvals/{made.json()['id']}")["purpose"] == said
    with world.app.state.db.sessions() as db:
        delivery = db.scalar(select(Delivery).where(Delivery.channel_id == channel_id))
    assert f'{LABEL}: "{said}"' in delivery.payload["text"]
    assert delivery.payload["data"]["agent_stated_purpose"] == said
