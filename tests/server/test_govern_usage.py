"""Usage and friction from a team's ingested audit: two runtimes decide real calls with the
runtime's own gatekeeper (a limit, asks, denies, human approvals), ship their logs through
the ingest endpoint, the worker rolls them up, and the API gives them back by agent x tool x
day, with the ask rate, the most-asked rules and programs, the waits, and the actions that
were always approved (asked through the real approval endpoints, voted by two people)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from runestone.actions import Action
from runestone.audit.checkpoint import Signer
from runestone.audit.log import AuditLog, list_segments
from runestone.gatekeeper import Gatekeeper
from runestone.home import Layout
from runestone.identity import create_identity
from runestone.policy import compile_policy_text
from runestone_server.govern.models import UsageDay
from runestone_server.govern.rollup import roll_up_once
from runestone_server.models import ApiToken, Membership, Organisation, Runtime, Team, User
from runestone_server.security import hash_password, new_token

POLICY = '''[policy]
name = "usage"
default = "ask"
include = ["developer"]

[[limit]]
id = "loop"
repeat = true
max = 2
minutes = 10
per = "session"
decision = "deny"
'''


class Rt:
    """A runtime with its identity, real audit log and gatekeeper, enrolled in a team."""

    def __init__(self, app, tmp_path, name: str, org_id: int, team_id: int) -> None:
        self.layout = Layout(config_dir=tmp_path / name, state_dir=tmp_path / name / "state")
        identity = create_identity(self.layout)
        self.runtime_id = identity.runtime_id
        self.log = AuditLog(self.layout.audit_dir, identity.runtime_id,
                            signer=Signer(self.layout.private_key_file))
        self.gatekeeper = Gatekeeper(compile_policy_text(POLICY, source="usage.toml"),
                                     home="/home/dev", audit=self.log, approval_mode="ask",
                                     limits_file=self.layout.state_dir / "limits.sqlite")
        credential, digest = new_token("rsr")
        with app.state.db.sessions() as db:
            db.add(Runtime(org_id=org_id, team_id=team_id, runtime_id=identity.runtime_id,
                           public_key=identity.public_key, labels={}, credential_hash=digest))
            db.commit()
        self.auth = {"Authorization": f"Bearer {credential}"}

    def run(self, agent: str, command: str, session: str = "s1") -> str:
        action = Action("Bash", {"command": command}, "/home/dev/app", agent=agent,
                        session=session)
        return self.gatekeeper.check(action).decision

    def approved(self, agent: str, command: str) -> None:
        """What the gatekeeper records when a human approved an ask: ask, then allow."""
        action = Action("Bash", {"command": command}, "/home/dev/app", agent=agent,
                        session="s1")
        asked = self.gatekeeper.check(action)
        assert asked.decision == "ask"
        self.log.append([{"kind": "decision", "request_id": asked.request_id,
                          "tool": "Bash", "session": "s1", "action_hash": action.hash,
                          "decision": "allow", "rules": list(asked.rules),
                          "reason": "Approved by bob", "summary": command,
                          "approval": {"state": "consumed", "request": asked.request_id,
                                       "approver": "bob"}}])

    def ship(self, client) -> None:
        entries = []
        for _, path in list_segments(self.layout.audit_dir):
            entries += [json.loads(line) for line in path.read_text().splitlines()]
        answer = client.post("/api/v1/runtime/audit", json={"entries": entries},
                             headers=self.auth)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def world(server, tmp_path):
    app, client = server
    with app.state.db.sessions() as db:
        org = Organisation(name="a")
        db.add(org)
        db.flush()
        team = Team(org_id=org.id, name="core")
        db.add(team)
        db.flush()
        tokens = {}
        for name, admin in (("admin", True), ("bob", False), ("carol", False)):
            user = User(org_id=org.id, username=name, password_hash=hash_password("x" * 12),
                        org_admin=admin)
            db.add(user)
            db.flush()
            if not admin:
                db.add(Membership(org_id=org.id, team_id=team.id, user_id=user.id,
                                  role="approver"))
            token, digest = new_token("rst")
            db.add(ApiToken(org_id=org.id, user_id=user.id, name="t", token_hash=digest,
                            scopes=["read", "write"], kind="api"))
            tokens[name] = {"Authorization": f"Bearer {token}"}
        db.commit()
        ids = (org.id, team.id)
    runtimes = [Rt(app, tmp_path, name, *ids) for name in ("one", "two")]
    return app, client, ids[1], tokens, runtimes


def roll_up(app) -> None:
    later = datetime.now(UTC) + timedelta(minutes=1)
    with app.state.db.sessions() as db:
        while roll_up_once(db, now=later):
            pass


def test_usage_by_agent_tool_and_day(world):
    app, client, team, tokens, (one, two) = world
    # claude loops on `git status`: two allowed, then the limit denies.
    assert [one.run("claude", "git status") for _ in range(3)] == ["allow", "allow", "deny"]
    assert one.run("claude", "curl https://example.com/a") == "ask"
    assert two.run("codex", "curl https://example.com/b") == "ask"
    assert two.run("codex", "rm -rf ~") == "deny"
    two.approved("codex", "curl https://example.com/c")
    for rt in (one, two):
        rt.ship(client)
    roll_up(app)

    answer = client.get(f"/api/v1/teams/{team}/usage?days=7", headers=tokens["admin"])
    assert answer.status_code == 200, answer.text
    usage = answer.json()
    today = datetime.now(UTC).date().isoformat()
    rows = {(r["day"], r["agent"], r["tool"]): r for r in usage["rows"]}
    claude, codex = rows[(today, "claude", "Bash")], rows[(today, "codex", "Bash")]
    assert (claude["decisions"], claude["asks"], claude["denies"], claude["limit_hits"],
            claude["approvals"]) == (4, 1, 1, 1, 0)
    # codex: an ask, a deny, and an ask followed by its approved allow.
    assert (codex["decisions"], codex["asks"], codex["denies"], codex["limit_hits"],
            codex["approvals"]) == (4, 2, 1, 0, 1)
    assert usage["totals"]["decisions"] == 8
    assert usage["per_day"][-1] == {"day": today, "decisions": 8, "asks": 3, "approvals": 1,
                                    "denies": 2, "limit_hits": 1}
    assert len(usage["per_day"]) == 7

    # Rolling up again counts nothing twice.
    roll_up(app)
    with app.state.db.sessions() as db:
        assert sum(r.decisions for r in db.scalars(select(UsageDay))) == 8

    friction = client.get(f"/api/v1/teams/{team}/friction?days=7",
                          headers=tokens["admin"]).json()
    assert friction["asks"] == 3 and friction["ask_rate"] == round(3 / 8, 4)
    assert friction["most_asked_programs"] == [{"program": "curl", "asks": 3}]
    assert sum(r["asks"] for r in friction["most_asked_rules"]) == 3


def test_waits_and_always_approved_asks(world):
    _app, client, team, tokens, (one, two) = world
    # The same call in four sessions on two runtimes: four action hashes, one call.
    for rt, n in ((one, 0), (two, 1), (one, 2), (two, 3)):
        asked = client.post("/api/v1/runtime/approvals", headers=rt.auth, json={
            "request_id": f"req_{n}", "action_hash": f"{n}" * 64, "tool": "Bash",
            "summary": "npm publish", "rules": ["team.publish"], "session": f"s{n}",
            "input": {"command": "npm publish"}})
        assert asked.status_code == 201, asked.text
        voter = ("bob", "carol")[n % 2]
        approval = asked.json()["id"]
        voted = client.post(f"/api/v1/approvals/{approval}/votes", headers=tokens[voter],
                            json={"vote": "approve"})
        assert voted.status_code == 200, voted.text
    # One action approved once, then denied: not "always approved".
    for n, vote in ((4, "approve"), (5, "deny")):
        asked = client.post("/api/v1/runtime/approvals", headers=one.auth, json={
            "request_id": f"req_{n}", "action_hash": f"{n}" * 64, "tool": "Bash",
            "summary": "git push --force", "input": {"command": "git push --force"}})
        client.post(f"/api/v1/approvals/{asked.json()['id']}/votes", headers=tokens["bob"],
                    json={"vote": vote})
    pending = client.post("/api/v1/runtime/approvals", headers=two.auth, json={
        "request_id": "req_6", "action_hash": "e" * 64, "tool": "Bash", "summary": "make"})
    assert pending.status_code == 201

    friction = client.get(f"/api/v1/teams/{team}/friction",
                          headers=tokens["admin"]).json()
    [group] = friction["always_approved"]
    assert {k: v for k, v in group.items() if k != "call"} == {
        "summary": "npm publish", "tool": "Bash", "rule": "team.publish", "asks": 4,
        "approvals": 4, "people": 2, "runtimes": 2}
    waits = friction["waits"]
    assert waits["decided"] == 6 and waits["pending"] == 1
    assert waits["median_seconds"] is not None and waits["median_seconds"] >= 0
    assert {w["request_id"] for w in waits["recent"]} == {f"req_{n}" for n in range(7)}


def test_days_are_bounded(world):
    _app, client, team, tokens, _ = world
    for days in (0, 367, -1):
        answer = client.get(f"/api/v1/teams/{team}/usage?days={days}",
                            headers=tokens["admin"])
        assert answer.status_code == 422
