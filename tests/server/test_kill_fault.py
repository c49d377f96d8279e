"""The server killed (SIGKILL) at random points of a vote, a ship and an escalation, 20 times,
on SQLite and PostgreSQL. Each round has all three in flight when the kill lands: an
approver's vote on a request that one vote decides, `runestone audit ship` of new entries,
and a request escalating and expiring under the worker (timeouts of a fraction of a second).
The server restarts on the same database after each kill. At the end no decision is lost
(every voted request is approved, with its voter; every escalating one expired, which is a
deny), no request is left pending, every local audit entry is on the server once, and the
chain verifies on the runtime and on the server."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time

from liveserver import ServerProcess, api, enroll_runtime, request, runestone
from runestone.audit.log import list_segments

ROUNDS = 20
USER = "voter"
PASSWORD = "another long password"


def _ask(base: str, credential: str, request_id: str, rule: str) -> int:
    status, answer = _runtime_post(base, credential, request_id, rule)
    assert status in (200, 201), answer
    return int(answer["id"])


def _runtime_post(base: str, credential: str, request_id: str, rule: str):
    import urllib.error
    import urllib.request

    body = {"request_id": request_id, "tool": "Bash", "severity": "medium",
            "action_hash": f"{random.getrandbits(256):064x}", "summary": "curl example.com",
            "reason": "network", "rules": [rule], "input": {"command": "curl example.com"},
            "agent": "claude-code", "mode": "defer"}
    sent = urllib.request.Request(f"{base}/api/v1/runtime/approvals", method="POST",
                                  data=json.dumps(body).encode(),
                                  headers={"Content-Type": "application/json",
                                           "Authorization": f"Bearer {credential}"})
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _vote(base: str, token: str, approval_id: int) -> int | None:
    try:
        status, _ = request(base, "POST", f"/api/v1/approvals/{approval_id}/votes", token,
                            {"vote": "approve", "reason": "fine"})
    except OSError:
        return None  # the server died under the vote
    return status


def _actions(round_: int) -> str:
    return "".join(json.dumps({"tool_name": "Bash", "cwd": "/tmp", "tool_input": {
        "command": f"echo {round_}-{n}"}}) + "\n" for n in range(4))


def _wait(predicate, seconds: float = 30.0) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_kills_at_random_points_lose_no_decision(database_url, tmp_path):
    chance = random.Random(17)
    server = ServerProcess(database_url, tmp_path / "server", RUNESTONE_SERVER_TICK="0.1",
                           RUNESTONE_AUDIT_REVERIFY_EVERY="0")
    server.init()
    server.start()
    try:
        admin = server.login()
        team = api(server.base, "POST", "/api/v1/teams", admin, {"name": "core"})["id"]
        api(server.base, "POST", "/api/v1/users", admin, {"username": USER,
                                                          "password": PASSWORD})
        api(server.base, "PUT", f"/api/v1/teams/{team}/members", admin,
            {"username": USER, "role": "approver"})
        group = api(server.base, "POST", f"/api/v1/teams/{team}/approver-groups", admin,
                    {"name": "voters", "members": [USER]})["id"]
        api(server.base, "POST", f"/api/v1/teams/{team}/approval-routes", admin,
            {"name": "one-vote", "rule": "fault.vote", "levels": [
                {"group_id": group, "timeout_seconds": 3600, "quorum": 1}]})
        api(server.base, "POST", f"/api/v1/teams/{team}/approval-routes", admin,
            {"name": "escalating", "rule": "fault.escalate", "levels": [
                {"group_id": group, "timeout_seconds": 1, "quorum": 1},
                {"group_id": group, "timeout_seconds": 1, "quorum": 1}]})
        voter = server.login(USER, PASSWORD)
        home = tmp_path / "laptop"
        assert enroll_runtime(server.base, admin, team, home).returncode == 0
        credential = (home / "keys" / "remote.credential").read_text().strip()

        voted: dict[str, int] = {}
        escalating: dict[str, int] = {}
        for round_ in range(ROUNDS):
            vote_id = _ask(server.base, credential, f"req_vote_{round_:04d}", "fault.vote")
            voted[f"req_vote_{round_:04d}"] = vote_id
            escalating[f"req_esc_{round_:04d}"] = _ask(
                server.base, credential, f"req_esc_{round_:04d}", "fault.escalate")
            shipping = subprocess.Popen(
                [sys.executable, "-m", "runestone", "audit", "ship"],
                env={**server.env, "RUNESTONE_HOME": str(home)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            voting = threading.Thread(target=_vote, args=(server.base, voter, vote_id))
            voting.start()
            # Somewhere in the vote and the ship, and in the escalation's second.
            time.sleep(chance.uniform(0.0, 0.8))
            server.process.kill()
            server.process.wait()
            voting.join()
            # New entries for the next round's ship, written while the server restarts.
            checking = subprocess.Popen(
                [sys.executable, "-m", "runestone", "check"], text=True,
                env={**server.env, "RUNESTONE_HOME": str(home)}, stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert checking.stdin is not None
            checking.stdin.write(_actions(round_))
            checking.stdin.close()
            server.start()  # the ship retries meanwhile, and may resume on this server
            assert checking.wait(timeout=120) == 0
            shipping.wait(timeout=120)
            # The voter tries again when the answer was lost: decided (200), or already
            # voted and left for the worker to settle (409): never a lost vote.
            assert _vote(server.base, voter, vote_id) in (200, 409)

        def state(request_id: str) -> str:
            _, view = request(server.base, "GET", f"/api/v1/runtime/approvals/{request_id}",
                              credential)
            return view["state"]

        def settled() -> bool:
            return all(state(r) == "approved" for r in voted) and \
                all(state(r) == "expired" for r in escalating)

        assert _wait(settled), {r: state(r) for r in [*voted, *escalating]
                                if state(r) not in ("approved", "expired")}
        for request_id in voted:
            _, view = request(server.base, "GET", f"/api/v1/runtime/approvals/{request_id}",
                              credential)
            assert view["approvers"] == [USER] and view["signature"], view

        shipped = runestone(home, "audit", "ship")
        assert shipped.returncode == 0, shipped.stderr
        assert runestone(home, "audit", "verify").returncode == 0
        [chain] = api(server.base, "GET", f"/api/v1/teams/{team}/audit/verify", admin)
        assert (chain["status"], chain["problem"]) == ("verified", "")
        local = [json.loads(line) for _, path in list_segments(home / "state" / "audit")
                 for line in path.read_text().splitlines() if line.strip()]
        assert chain["head_seq"] == len(local) == local[-1]["seq"]
    finally:
        server.stop()

