"""Grants from the control plane, end to end with a real server and enrolled runtimes:
a rule grant used exactly its count by two runtimes racing for it (eight hook processes);
a grant refused once revoked or expired; a grant altered on disk failing its signature; a
runtime that cannot reach the server spending only the uses allotted to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from liveserver import PASSWORD, ServerProcess, api, enroll_runtime, request

POLICY = '[policy]\nname = "team"\ndefault = "ask"\ninclude = ["developer"]\n'
CWD = "/srv/app"


def check(home, command: str) -> tuple[dict, str]:
    """`runestone check` of a command in /srv/app as a host would ask (no waiting)."""
    done = subprocess.run(
        [sys.executable, "-m", "runestone", "check", "--cwd", CWD, "--home-dir", "/home/dev",
         "--command", command], capture_output=True, text=True, timeout=120,
        env={**os.environ, "RUNESTONE_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def cli(home, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "runestone", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "RUNESTONE_HOME": str(home)})
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture
def team(database_url, tmp_path):
    server = ServerProcess(database_url, tmp_path / "server")
    server.init()
    server.start()
    admin = server.login()
    team_id = api(server.base, "POST", "/api/v1/teams", admin, {"name": "core"})["id"]
    api(server.base, "POST", "/api/v1/users", admin, {"username": "gina", "password": PASSWORD})
    api(server.base, "PUT", f"/api/v1/teams/{team_id}/members", admin,
        {"username": "gina", "role": "approver"})
    api(server.base, "POST", f"/api/v1/teams/{team_id}/policies", admin, {"text": POLICY})
    api(server.base, "POST", f"/api/v1/teams/{team_id}/publications", admin, {"number": 1})
    homes = []
    for name, env in (("one", "dev"), ("two", "dev"), ("three", "lab")):
        home = tmp_path / f"rt-{name}"
        enrolled = enroll_runtime(server.base, admin, team_id, home, {"env": env})
        assert enrolled.returncode == 0, enrolled.stderr
        homes.append(home)
    world = {"server": server, "base": server.base, "team": team_id, "admin": admin,
             "gina": server.login("gina"), "homes": homes, "url": database_url}
    yield world
    server.stop()


def issue(world, **body) -> dict:
    return api(world["base"], "POST", f"/api/v1/teams/{world['team']}/grants", world["gina"],
               {"expires_minutes": 60, **body})


def test_a_grant_is_used_exactly_its_count_across_two_racing_runtimes(team):
    grant = issue(team, rule={"program": ["curl"], "domain": ["api.example.com"]}, uses=3,
                  labels={"env": "dev"}, reason="release day")
    one, two, lab = team["homes"]
    for home in (one, two, lab):
        cli(home, "policy", "pull")
    jobs = [(home, f"curl https://api.example.com/items/{n}") for n in range(4)
            for home in (one, two)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda job: check(*job)[0], jobs))
    allowed = [a for a in answers if a["decision"] == "allow"]
    assert len(allowed) == 3, [a["decision"] for a in answers]
    assert all(a["decision"] == "ask" for a in answers if a not in allowed)
    assert all(grant["grant_id"] in a["reason"] for a in allowed)
    listed = api(team["base"], "GET", f"/api/v1/teams/{team['team']}/grants", team["admin"])
    assert (listed[0]["used"], listed[0]["state"]) == (3, "spent")
    # Another team's label does not get it, and nothing is left anyway.
    assert check(lab, "curl https://api.example.com/x")[0]["decision"] == "ask"
    # Audited on both sides: the runtimes' grant-use entries, the server's events.
    cli(one, "audit", "ship")
    cli(two, "audit", "ship")
    events = api(team["base"], "GET", f"/api/v1/teams/{team['team']}/events", team["admin"])
    assert sum(1 for e in events if e["kind"] == "grant.used") == 3
    assert any(e["kind"] == "grant.issued" for e in events)
    found = api(team["base"], "GET",
                f"/api/v1/teams/{team['team']}/audit?kind=grant-use&limit=50", team["admin"])
    assert len(found["items"]) == 3


def test_revoked_and_expired_grants_are_refused(team):
    one = team["homes"][0]
    revoked = issue(team, action={"tool": "Bash", "input": {"command": "curl https://a.example"},
                                  "cwd": CWD}, uses=5)
    expired = issue(team, action={"tool": "Bash", "input": {"command": "curl https://b.example"},
                                  "cwd": CWD}, uses=5)
    cli(one, "policy", "pull")
    status = cli(one, "status")
    assert "grants: 2 from the control plane" in status and revoked["grant_id"] in status
    assert check(one, "curl https://a.example")[0]["decision"] == "allow"
    assert check(one, "curl https://a.example/other")[0]["decision"] == "ask"  # exact only
    status, answer = request(team["base"], "POST", f"/api/v1/teams/{team['team']}/grants/"
                             f"{revoked['grant_id']}/revoke", team["gina"],
                             {"reason": "done with it"})
    assert status == 200 and answer["state"] == "revoked"
    # Still in the runtime's copy (not pulled since): the server refuses the use.
    decision, stderr = check(one, "curl https://a.example")
    assert decision["decision"] == "ask" and "revoked" in stderr
    engine = create_engine(team["url"])
    with engine.begin() as db:
        db.execute(text("UPDATE govern_grants SET expires = :past WHERE grant_id = :id"),
                   {"past": datetime.now(UTC) - timedelta(minutes=1),
                    "id": expired["grant_id"]})
    engine.dispose()
    decision, stderr = check(one, "curl https://b.example")
    assert decision["decision"] == "ask" and "expired" in stderr
    pulled = json.loads(cli(one, "policy", "pull"))
    assert pulled["grants"] == 0  # neither is handed out any more


def test_an_altered_grant_fails_its_signature(team):
    one = team["homes"][0]
    issue(team, action={"tool": "Bash", "input": {"command": "curl https://c.example"},
                        "cwd": CWD}, uses=5)
    cli(one, "policy", "pull")
    [path] = list(one.rglob("server-grants.json"))
    kept = json.loads(path.read_text())
    from runestone.actions import Action
    from runestone.approvals.service import action_key

    evil = action_key(Action("Bash", {"command": "curl https://evil.example"}, CWD))
    kept["grants"][0]["grant"]["match"]["action_key"] = evil
    path.write_text(json.dumps(kept))
    decision, stderr = check(one, "curl https://evil.example")
    assert decision["decision"] == "ask" and "fails its signature" in stderr
    assert check(one, "curl https://c.example")[0]["decision"] == "ask"  # ignored whole


def test_offline_a_runtime_spends_only_its_allotment(team):
    lab = team["homes"][2]
    grant = issue(team, rule={"program": ["curl"], "domain": ["d.example"]}, uses=10,
                  offline_uses=2, labels={"env": "lab"})
    cli(lab, "policy", "pull")
    listed = api(team["base"], "GET", f"/api/v1/teams/{team['team']}/grants", team["admin"])
    assert listed[0]["reserved"] == 2
    team["server"].stop()
    answers = [check(lab, f"curl https://d.example/{n}")[0]["decision"] for n in range(3)]
    assert answers == ["allow", "allow", "ask"]
    assert grant["grant_id"]
