"""Proposals from evidence, end to end: a real server and two enrolled runtimes. People
approve the same kind of call on both runtimes and deny one; the runtimes ship their logs;
the server proposes the smallest rule that covers the approvals, its simulation lists the
asks it saves and flags the denied action first; a policy author makes it a draft in one
step (nothing is published by that), publishes it, and the runtimes then allow the call."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from liveserver import PASSWORD, ServerProcess, api, enroll_runtime, request

POLICY = '[policy]\nname = "team"\ndefault = "ask"\ninclude = ["developer"]\n'
APPROVED = ("curl https://api.example.com/v1/items/1", "curl https://api.example.com/v1/items/2",
            "curl https://api.example.com/v1/items/3")
DENIED = "curl https://api.example.com/admin/drop"
LATER = "curl https://api.example.com/v1/items/9"


def check(home, command: str) -> dict:
    """`runestone check` of a shell command in /srv/app, deferring asks to the server."""
    done = subprocess.run(
        [sys.executable, "-m", "runestone", "check", "--approval", "defer", "--cwd",
         "/srv/app", "--home-dir", "/home/dev", "--command", command],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "RUNESTONE_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def cli(home, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "runestone", *args], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "RUNESTONE_HOME": str(home)})
    assert done.returncode == 0, (args, done.stdout, done.stderr)


def approval_id(decision: dict) -> int:
    return int(decision["approval"]["link"].rsplit("/", 1)[1])


def test_approvals_become_a_proposal_a_draft_and_an_allow(database_url, tmp_path):
    server = ServerProcess(database_url, tmp_path / "server")
    server.init()
    server.start()
    try:
        base = server.base
        admin = server.login()
        team = api(base, "POST", "/api/v1/teams", admin, {"name": "core"})["id"]
        tokens = {}
        for name, role in (("bob", "approver"), ("carol", "approver"),
                           ("dana", "policy_author"), ("erin", "auditor")):
            api(base, "POST", "/api/v1/users", admin, {"username": name, "password": PASSWORD})
            api(base, "PUT", f"/api/v1/teams/{team}/members", admin,
                {"username": name, "role": role})
            tokens[name] = server.login(name)
        api(base, "POST", f"/api/v1/teams/{team}/policies", admin, {"text": POLICY})
        api(base, "POST", f"/api/v1/teams/{team}/publications", admin, {"number": 1})
        homes = [tmp_path / "rt-one", tmp_path / "rt-two"]
        for home in homes:
            enrolled = enroll_runtime(base, admin, team, home)
            assert enrolled.returncode == 0, enrolled.stderr
            cli(home, "policy", "pull")

        # Three approvals by two people on two runtimes; one ask denied.
        for home, command, voter in ((homes[0], APPROVED[0], "bob"),
                                     (homes[1], APPROVED[1], "carol"),
                                     (homes[0], APPROVED[2], "carol"),
                                     (homes[1], DENIED, "bob")):
            asked = check(home, command)
            assert asked["decision"] == "deny" and "approval" in asked, asked
            vote = "deny" if command == DENIED else "approve"
            api(base, "POST", f"/api/v1/approvals/{approval_id(asked)}/votes",
                tokens[voter], {"vote": vote})
            assert check(home, command)["decision"] == ("deny" if vote == "deny" else "allow")
        for home in homes:
            cli(home, "audit", "ship")

        # The thresholds are the team's: two people are needed, and there are two.
        status, _ = request(base, "PUT", f"/api/v1/teams/{team}/proposal-settings",
                            tokens["dana"], {"min_approvals": 3, "min_people": 3})
        assert status == 200
        none = api(base, "GET", f"/api/v1/teams/{team}/proposals", tokens["erin"])
        assert none["proposals"] == [] and none["approved"] == 3
        api(base, "PUT", f"/api/v1/teams/{team}/proposal-settings", tokens["dana"],
            {"min_approvals": 3, "min_people": 2})
        found = api(base, "GET", f"/api/v1/teams/{team}/proposals", tokens["erin"])
        # Five asks: the three approved, the denied one, and its retry (asked again).
        assert found["base"]["number"] == 1 and found["asks"] == 5, found
        [proposal] = found["proposals"]
        assert proposal["rule"]["program"] == ["curl"]
        assert proposal["rule"]["domain"] == ["api.example.com"]
        assert (proposal["approvals"], proposal["people"], len(proposal["runtimes"])) == \
            (3, 2, 2)
        assert proposal["saved"] == 5 and not proposal["refused"], proposal
        # The simulation: the denied action first, flagged, then the saved asks.
        first, *rest = proposal["newly_allowed"]
        assert first["human_denied"] and first["summary"] == DENIED, proposal
        assert first["denied_by"] == ["bob"] and all(not item["human_denied"] for item in rest)
        assert proposal["approvers"] == ["bob", "carol"]
        assert {item["summary"] for item in rest} == {*APPROVED, DENIED}

        # An auditor may read proposals but not draft them; the author drafts in one step.
        status, _ = request(base, "POST", f"/api/v1/teams/{team}/proposals/drafts",
                            tokens["erin"], {"rule_hash": proposal["rule_hash"]})
        assert status == 403
        draft = api(base, "POST", f"/api/v1/teams/{team}/proposals/drafts", tokens["dana"],
                    {"rule_hash": proposal["rule_hash"]})
        assert draft["number"] == 2 and draft["base"] == 1
        text = api(base, "GET", f"/api/v1/teams/{team}/policies/2", admin)["text"]
        assert text.startswith(POLICY) and 'program = ["curl"]' in text
        # Drafting published nothing: the runtimes still ask.
        for home in homes:
            cli(home, "policy", "pull")
            assert check(home, LATER)["decision"] == "deny"

        api(base, "POST", f"/api/v1/teams/{team}/publications", tokens["dana"], {"number": 2})
        for home in homes:
            cli(home, "policy", "pull")
            allowed = check(home, LATER)
            assert allowed["decision"] == "allow", allowed
            assert proposal["id"] in allowed["rules"]
        # A stale proposal (its rule is now in the policy) cannot be drafted again.
        status, answer = request(base, "POST", f"/api/v1/teams/{team}/proposals/drafts",
                                 tokens["dana"], {"rule_hash": proposal["rule_hash"]})
        assert status == 404, answer
    finally:
        server.stop()
