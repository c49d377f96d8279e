"""Approvals routed through a real server process, end to end.

1. The runtime acts only on a decision it verified: against the real server, and against
   an impersonating server that forges or tampers with decisions; offline, it falls back
   to local approval and says so. On SQLite and PostgreSQL.
2. The issue's must-show, on PostgreSQL: two runtimes, real webhook and SMTP receivers; an
   ask routed to the right group, escalated after its timeout, approved by the second
   level with a quorum of two, the retried action allowed, and the whole timeline visible
   through the server's API and its audit search.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from notify_receivers import HttpReceiver, SmtpReceiver

from liveserver import PASSWORD, ServerProcess, api, enroll_runtime, request, runestone
from runestone.actions import Action
from runestone.remote.signing import decision_message

COMMAND = "curl https://example.com"
FAST_TICK = {"RUNESTONE_SERVER_TICK": "0.3"}  # escalations are due within seconds


def check(home: Path, *options: str) -> dict:
    result = runestone(home, "check", *options, "--command", COMMAND)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Org:
    """The organisation `acme` on a running server: its admin, a team, people."""

    def __init__(self, server: ServerProcess) -> None:
        self.base = server.base
        self.admin = api(self.base, "POST", "/api/v1/login", body={
            "organisation": "acme", "username": "alice", "password": PASSWORD})["token"]
        self.team = api(self.base, "POST", "/api/v1/teams", self.admin, {"name": "core"})["id"]
        self.tokens: dict[str, str] = {}

    def person(self, name: str, role: str = "approver") -> str:
        api(self.base, "POST", "/api/v1/users", self.admin,
           {"username": name, "password": PASSWORD})
        api(self.base, "PUT", f"/api/v1/teams/{self.team}/members", self.admin,
           {"username": name, "role": role})
        self.tokens[name] = api(self.base, "POST", "/api/v1/login", body={
            "organisation": "acme", "username": name, "password": PASSWORD})["token"]
        return self.tokens[name]

    def group(self, name: str, members: list[str], channels: list[int] = ()) -> int:
        return api(self.base, "POST", f"/api/v1/teams/{self.team}/approver-groups", self.admin,
                  {"name": name, "members": members, "channel_ids": list(channels)})["id"]

    def route(self, name: str, levels: list[tuple[int, int, int]], **match) -> None:
        api(self.base, "POST", f"/api/v1/teams/{self.team}/approval-routes", self.admin,
           {"name": name, **match, "levels": [
               {"group_id": g, "timeout_seconds": t, "quorum": q} for g, t, q in levels]})

    def enroll(self, home: Path, labels: dict[str, str]) -> None:
        enrolled = enroll_runtime(self.base, self.admin, self.team, home, labels)
        assert enrolled.returncode == 0, enrolled.stderr

    def vote(self, who: str, approval_id: int, vote: str = "approve") -> dict:
        return api(self.base, "POST", f"/api/v1/approvals/{approval_id}/votes",
                  self.tokens[who], {"vote": vote, "reason": f"{who} checked it"})


def approval_id_of(decision: dict) -> int:
    link = decision["approval"]["link"]
    assert "/approvals/" in link, link
    return int(link.rsplit("/", 1)[1])


# --- 1. the runtime verifies ------------------------------------------------------------

class Impersonator:
    """A server that is not the control plane: it answers a runtime's approval calls with
    whatever decision and signature the test sets."""

    def __init__(self) -> None:
        self.answer: dict = {}
        self.asked: list[dict] = []
        self.refuse = 0  # an HTTP status to refuse asks with
        impersonator = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, document: dict) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                impersonator.asked.append(body)
                if impersonator.refuse:
                    self._send(impersonator.refuse, {"detail": "runtime not allowed"})
                    return
                self._send(201, {"id": 99, "request_id": body["request_id"],
                                 "state": "pending", "action_hash": body["action_hash"],
                                 "runtime_id": "", "level": 0, "reason": "",
                                 "link": "http://impersonator/approvals/99", "approvers": [],
                                 "signature": ""})

            def do_GET(self) -> None:
                request_id = self.path.split("?")[0].rsplit("/", 1)[1]
                self._send(200, {**impersonator.answer, "request_id": request_id,
                                 "signature": impersonator.sign(request_id)})

            def log_message(self, *args: object) -> None:
                pass

        self.sign = lambda request_id: ""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def gate(mode: str, wait: float = 30.0):
    """A fresh gatekeeper, as a new hook process would build it."""
    from runestone.gatekeeper import Gatekeeper
    from runestone.home import layout

    return Gatekeeper.from_layout(layout(), approval_mode=mode, wait_seconds=wait)


def decide(mode: str, action: Action, wait: float = 30.0):
    gatekeeper = gate(mode, wait)
    try:
        return gatekeeper.check(action)
    finally:
        gatekeeper.approvals.close()
        gatekeeper.audit.close()


@contextlib.contextmanager
def routed_runtime(database_url: str, tmp_path: Path,
                   home: Path) -> Iterator[tuple[ServerProcess, Org, Impersonator]]:
    """A server (fast escalation tick) whose team routes every ask to the group `ops`
    (ops1, quorum one), `home` enrolled in it with env=prod, and an impersonator ready to
    stand in for the server; both stopped on the way out."""
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'approvals.sqlite3'}"
    server = ServerProcess(database_url, tmp_path / "server", **FAST_TICK)
    server.init()
    server.start()
    impersonator = Impersonator()
    try:
        org = Org(server)
        org.person("ops1")
        org.route("all", [(org.group("ops", ["ops1"]), 600, 1)])
        org.enroll(home, {"env": "prod"})
        yield server, org, impersonator
    finally:
        impersonator.close()
        server.stop()


def test_the_runtime_acts_only_on_a_verified_decision(database_url, tmp_path, isolated_home,
                                                      monkeypatch):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from runestone.approvals.store import ApprovalStore
    from runestone.home import layout
    from runestone_server.security import ServerKey

    with routed_runtime(database_url, tmp_path, isolated_home) as (server, org, impersonator):
        where = layout()
        remote_file = where.config_dir / "remote.json"
        remote = json.loads(remote_file.read_text())
        action = Action("Bash", {"command": COMMAND}, str(tmp_path))

        # Deferred: denied now, with the server's link; the approver approves.
        first = decide("defer", action)
        assert first.decision == "deny"
        assert dict(first.approval)["link"].startswith(f"{server.base}/approvals/")
        assert "routed to the control plane" in first.reason
        action_hash = first.action_hash
        # A retry before anyone decided joins the open ask: approvers are asked once.
        again = decide("defer", action)
        assert again.decision == "deny"
        assert dict(again.approval)["link"] == dict(first.approval)["link"]
        assert len(api(server.base, "GET", "/api/v1/approvals", org.tokens["ops1"])) == 1
        local = runestone(isolated_home, "approvals", "approve", again.request_id)
        assert local.returncode != 0 and "decide it there" in local.stderr  # no local bypass

        # The server can be impersonated: every answer that does not verify is a deny.
        remote_file.write_text(json.dumps({**remote, "server": impersonator.base}))
        real_key = ServerKey(server.home / "keys" / "server.ed25519")
        credential = (where.keys_dir / "remote.credential").read_text().strip()
        mine = hashlib.sha256(credential.encode()).hexdigest()
        runtime_id = remote["runtime_id"]
        impersonator.answer = {"state": "approved", "action_hash": action_hash,
                               "runtime_id": runtime_id, "approvers": ["mallory"],
                               "reason": "", "id": 99, "level": 0, "link": ""}
        forged_key = Ed25519PrivateKey.generate()
        forgeries = {
            "another key": lambda rid: forged_key.sign(decision_message(
                runtime_id, rid, action_hash, "approved", mine)).hex(),
            "another action": lambda rid: real_key.sign(decision_message(
                runtime_id, rid, "0" * 64, "approved", mine)),
            "another runtime's credential": lambda rid: real_key.sign(decision_message(
                runtime_id, rid, action_hash, "approved", hashlib.sha256(b"x").hexdigest())),
            "a denial's signature": lambda rid: real_key.sign(decision_message(
                runtime_id, rid, action_hash, "denied", mine)),
        }
        def refused_ids() -> set[str]:
            store = ApprovalStore(where.state_dir / "approvals.sqlite3")
            try:
                return {r.id for r in store.requests(("denied",))
                        if "does not verify" in (r.decision_reason or "")}
            finally:
                store.close()

        for why, forge in forgeries.items():
            impersonator.sign = forge
            before = refused_ids()
            answer = decide("defer", action)
            assert answer.decision == "deny", why
            assert refused_ids() - before, why  # this forgery, not an earlier one
        # The same impersonator with a genuine signature is believed: the check is the key.
        impersonator.sign = lambda rid: real_key.sign(decision_message(
            runtime_id, rid, action_hash, "approved", mine))
        assert decide("defer", action).decision == "allow"

        # A server that answers but refuses the ask is never a reason to approve locally,
        # whatever the fallback says.
        monkeypatch.setenv("RUNESTONE_APPROVAL_FALLBACK", "local")
        impersonator.refuse = 403
        refused = decide("defer", action)
        assert refused.decision == "deny" and "HTTP 403" in refused.reason, refused.reason
        assert "local approval" not in refused.reason
        impersonator.refuse = 0
        monkeypatch.delenv("RUNESTONE_APPROVAL_FALLBACK")

        # The real server: approve, and the identical retry is allowed once.
        remote_file.write_text(json.dumps(remote))
        deferred = decide("defer", action)
        assert deferred.decision == "deny"
        approval = approval_id_of(deferred.to_json())
        assert org.vote("ops1", approval)["state"] == "approved"
        allowed = decide("defer", action)
        assert allowed.decision == "allow" and "Approved by a human" in allowed.reason
        assert decide("defer", action).decision == "deny"  # single use

        # Wait mode: blocked on the long-poll, released as soon as the vote lands. (The
        # single-use retry above left an ask open on the server; this call joins it. The
        # first ask is still open too: the impersonated "decisions" never reached the
        # real server.)
        def approve_when_it_arrives() -> None:
            time.sleep(1.0)
            inbox = api(server.base, "GET", "/api/v1/approvals", org.tokens["ops1"])
            assert len(inbox) == 2 and inbox[0]["id"] == approval_id_of(first.to_json())
            org.vote("ops1", inbox[-1]["id"])

        voter = threading.Thread(target=approve_when_it_arrives)
        voter.start()
        started = time.monotonic()
        waited = decide("wait", action, wait=30)
        elapsed = time.monotonic() - started
        voter.join()
        assert waited.decision == "allow", waited.reason
        assert 1.0 < elapsed < 6, elapsed

        # Ask mode: the host asks its own user; the server only records the ask.
        hosted = decide("ask", action)
        assert hosted.decision == "ask"
        recorded = api(server.base, "GET", f"/api/v1/teams/{org.team}/approvals?state=host",
                      org.admin)
        assert [a["request_id"] for a in recorded] == [hosted.request_id]

        # A wait that runs out withdraws its ask from the approvers' inboxes.
        before = len(api(server.base, "GET", "/api/v1/approvals", org.tokens["ops1"]))
        gave_up = decide("wait", action, wait=1)
        assert gave_up.decision == "deny" and "no one decided" in gave_up.reason
        assert len(api(server.base, "GET", "/api/v1/approvals", org.tokens["ops1"])) == before
        withdrawn = api(server.base, "GET",
                       f"/api/v1/teams/{org.team}/approvals?state=cancelled", org.admin)
        assert len(withdrawn) == 1

    # Offline: the team's approvers cannot be reached, so the ask is denied, and the
    # machine's user cannot become the approver (no request to approve, no grant).
    offline = decide("defer", action)
    assert offline.decision == "deny"
    assert "does not answer" in offline.reason and "enrolled" in offline.reason
    assert "RUNESTONE_APPROVAL_FALLBACK=local" in offline.reason
    assert decide("wait", action, wait=1).decision == "deny"
    granted = runestone(isolated_home, "approvals", "grant", "--command", COMMAND,
                        "--minutes", "30")
    assert granted.returncode != 0 and "enrolled" in granted.stderr, granted.stderr
    assert decide("defer", action).decision == "deny"

    # With the local fallback configured, an unanswered ask stays on this machine and the
    # reason says so; still nothing is allowed until someone approves it here.
    monkeypatch.setenv("RUNESTONE_APPROVAL_FALLBACK", "local")
    local = decide("defer", action)
    assert local.decision == "deny"
    assert "does not answer" in local.reason and "local approval" in local.reason
    assert decide("wait", action, wait=1).decision == "deny"


def test_a_rule_session_approval_grants_the_rule_to_the_session_only(database_url, tmp_path,
                                                                      isolated_home):
    """Approved "rule-session" on the server: the runtime grants the request's rules for
    the requesting session, like a local rule-session approval. Another action of the same
    rule in that session is allowed; in another session it is asked again. A scope changed
    in the server's answer does not verify: a deny."""
    from runestone.audit.query import read_entries
    from runestone.home import layout
    from runestone_server.security import ServerKey

    with routed_runtime(database_url, tmp_path, isolated_home) as (server, org, impersonator):
        where = layout()
        first = Action("Bash", {"command": "ssh prod-db uptime"}, str(tmp_path), session="s1")
        same_rule = Action("Bash", {"command": "ssh prod-db df -h"}, str(tmp_path),
                           session="s1")
        other_session = Action("Bash", {"command": "ssh prod-db df -h"}, str(tmp_path),
                               session="s2")

        asked = decide("defer", first)
        assert asked.decision == "deny" and tuple(asked.rules) == ("rce.remote-shell",)
        approval = approval_id_of(asked.to_json())
        voted = api(server.base, "POST", f"/api/v1/approvals/{approval}/votes",
                   org.tokens["ops1"], {"vote": "approve", "scope": "rule-session",
                                        "minutes": 5, "reason": "maintenance window"})
        assert (voted["state"], voted["scope"], voted["scope_minutes"]) == \
            ("approved", "rule-session", 5)
        retried = decide("defer", first)
        assert retried.decision == "allow" and "(request " in retried.reason
        granted = decide("defer", same_rule)
        assert granted.decision == "allow", granted.reason
        assert "(grant grant_" in granted.reason
        assert decide("defer", same_rule).decision == "allow"  # for the session, not once
        elsewhere = decide("defer", other_session)
        assert elsewhere.decision == "deny" and "routed to the control plane" in \
            elsewhere.reason
        entries = list(read_entries(where.audit_dir))
        approved = [e for e in entries if e.get("kind") == "approval"
                    and e.get("request_id") == asked.request_id]
        assert len(approved) == 1 and approved[0]["scope"] == "rule-session"
        assert approved[0]["minutes"] == 5 and approved[0]["verified"] is True
        grants = [e for e in entries if e.get("kind") == "grant"]
        assert [(g["grant_id"], g["rule"], g["session"], g["minutes"]) for g in grants] == \
            [(approved[0]["grants"][0], "rce.remote-shell", "s1", 5)]
        assert len([e for e in entries if e.get("kind") == "grant-use"]) == 2

        # A scope widened in transit: the real key signed "once", the answer says
        # "rule-session". It does not verify, and nothing is granted.
        remote_file = where.config_dir / "remote.json"
        remote = json.loads(remote_file.read_text())
        remote_file.write_text(json.dumps({**remote, "server": impersonator.base}))
        real_key = ServerKey(server.home / "keys" / "server.ed25519")
        mine = hashlib.sha256((where.keys_dir / "remote.credential").read_text().strip()
                              .encode()).hexdigest()
        tampered = Action("Bash", {"command": "ssh prod-db ls"}, str(tmp_path), session="s3")
        tampered_hash = decide("defer", tampered).action_hash
        impersonator.answer = {"state": "approved", "action_hash": tampered_hash,
                               "runtime_id": remote["runtime_id"], "approvers": ["ops1"],
                               "reason": "", "id": 99, "level": 0, "link": "",
                               "scope": "rule-session", "minutes": 480}
        impersonator.sign = lambda rid: real_key.sign(decision_message(
            remote["runtime_id"], rid, tampered_hash, "approved", mine, "once", 0))
        refused = decide("defer", tampered)
        assert refused.decision == "deny"
        entries = list(read_entries(where.audit_dir))
        forged = [e for e in entries if e.get("kind") == "approval"
                  and e.get("verified") is False]
        assert forged and forged[-1]["decision"] == "denied"
        assert forged[-1]["scope"] == "once" and forged[-1]["grants"] == []
        assert len([e for e in entries if e.get("kind") == "grant"]) == 1
        # Signed as it is shown, the same answer is believed: the check is the signature.
        impersonator.sign = lambda rid: real_key.sign(decision_message(
            remote["runtime_id"], rid, tampered_hash, "approved", mine, "rule-session", 480))
        assert decide("defer", tampered).decision == "allow"


# --- 2. the must-show -------------------------------------------------------------------

def wait_for(predicate, timeout: float = 20.0, what: str = ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_routed_escalated_quorum_approved_and_audited(database_url, tmp_path):
    if not database_url.startswith("postgresql"):
        pytest.skip("the must-show runs on PostgreSQL (the SQLite path is covered above)")
    from runestone_server.notify.signing import verify_signature

    with HttpReceiver() as webhook, SmtpReceiver() as smtp:
        server = ServerProcess(database_url, tmp_path / "server", **FAST_TICK,
                               RUNESTONE_SMTP_HOST="127.0.0.1",
                               RUNESTONE_SMTP_PORT=str(smtp.port),
                               RUNESTONE_SMTP_FROM="runestone@example.com",
                               RUNESTONE_NOTIFY_BASE_DELAY="0.2",
                               RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS="1")
        server.init()
        server.start()
        try:
            org = Org(server)
            for name in ("ops1", "lead1", "lead2", "devlead"):
                org.person(name)
            hook = api(server.base, "POST", f"/api/v1/teams/{org.team}/channels", org.admin,
                      {"name": "oncall-hook", "kind": "webhook", "target": webhook.url})
            mail = api(server.base, "POST", f"/api/v1/teams/{org.team}/channels", org.admin,
                      {"name": "leads-mail", "kind": "email",
                       "target": "leads@example.com"})
            oncall = org.group("prod-oncall", ["ops1"], [hook["id"]])
            leads = org.group("prod-leads", ["lead1", "lead2"], [mail["id"]])
            dev = org.group("dev-approvers", ["devlead"])
            org.route("prod", [(oncall, 4, 1), (leads, 120, 2)], priority=10,
                      labels={"env": "prod"}, tool="Bash")
            org.route("dev", [(dev, 120, 1)], priority=20, labels={"env": "dev"})
            prod, dev_home = tmp_path / "runtime-prod", tmp_path / "runtime-dev"
            org.enroll(prod, {"env": "prod"})
            org.enroll(dev_home, {"env": "dev"})

            # Both runtimes ask; each ask goes to its own group.
            asked = check(prod, "--approval", "defer")
            assert asked["decision"] == "deny"
            approval = approval_id_of(asked)
            assert asked["approval"]["link"] == f"{server.base}/approvals/{approval}"

            def inbox(name: str) -> list[int]:
                return [a["id"] for a in api(server.base, "GET", "/api/v1/approvals",
                                            org.tokens[name])]

            assert (inbox("ops1"), inbox("lead1"), inbox("devlead")) == ([approval], [], [])
            dev_asked = check(dev_home, "--approval", "defer")
            assert inbox("devlead") == [approval_id_of(dev_asked)]
            assert approval not in inbox("devlead")

            # Level 1 is told through the signed webhook, with the approval link.
            posted = wait_for(lambda: webhook.requests, what="the webhook")[0]
            assert verify_signature(hook["secret"], posted.headers["X-Runestone-Timestamp"],
                                    posted.body, posted.headers["X-Runestone-Signature"])
            assert json.loads(posted.body)["link"] == f"{server.base}/approvals/{approval}"

            # Nobody at level 1 answers: after 4 s it escalates, and the leads get mail.
            message = wait_for(lambda: smtp.messages, timeout=30, what="the e-mail")[0][2]
            assert message["Subject"].startswith("Escalated")
            body = message.get_payload(decode=True).decode()
            assert f"{server.base}/approvals/{approval}" in body
            detail = api(server.base, "GET", f"/api/v1/approvals/{approval}", org.admin)
            assert (detail["state"], detail["level"]) == ("pending", 1)

            # Quorum of two at level 2; the retry is allowed once.
            assert org.vote("lead1", approval)["state"] == "pending"
            assert request(server.base, "POST", f"/api/v1/approvals/{approval}/votes",
                        org.tokens["lead1"], {"vote": "approve"})[0] == 409
            assert org.vote("lead2", approval)["state"] == "approved"
            retried = check(prod, "--approval", "defer")
            assert retried["decision"] == "allow", retried["reason"]
            assert "Approved by a human" in retried["reason"]

            # The whole timeline, from the approval API and from the audit search.
            detail = api(server.base, "GET", f"/api/v1/approvals/{approval}", org.admin)
            kinds = [step["kind"] for step in detail["timeline"]]
            assert kinds == ["approval.requested", "approval.notified", "approval.escalated",
                             "approval.notified", "approval.vote", "approval.vote",
                             "approval.decided"]
            assert detail["timeline"][-1]["detail"]["approvers"] == ["lead1", "lead2"]
            story = api(server.base, "GET", f"/api/v1/teams/{org.team}/audit/requests/"
                       f"{asked['request_id']}", org.admin)
            server_kinds = [s["kind"] for s in story["timeline"] if s.get("source") == "server"]
            assert server_kinds == kinds
            # With the runtime's audit shipped, the same story holds both halves.
            shipped = runestone(prod, "audit", "ship")
            assert shipped.returncode == 0, shipped.stderr
            story = api(server.base, "GET", f"/api/v1/teams/{org.team}/audit/requests/"
                       f"{asked['request_id']}", org.admin)
            runtime_kinds = [s.get("kind") for s in story["timeline"]
                             if s.get("source") == "runtime"]
            assert {"request", "decision", "approval-routing", "approval",
                    "execution-approved"} <= set(runtime_kinds), runtime_kinds
        finally:
            server.stop()


def test_an_ask_with_megabytes_of_input_reaches_the_approvers_cut(database_url, tmp_path,
                                                                  isolated_home):
    """Issue 17: a 30 MB input was stored and slowed every inbox. Now the server takes at
    most 1 MiB for an ask, so the runtime sends what an approver is shown (bounded), and the
    ask is routed rather than refused; the whole action stays in the runtime's audit log."""
    from runestone.audit.query import read_entries
    from runestone.bounded import MAX_SHOWN
    from runestone.home import layout

    with routed_runtime(database_url, tmp_path, isolated_home) as (server, org, _):
        big = Action("Bash", {"command": "ssh prod-db uptime",
                              "description": "D" * 3_000_000}, str(tmp_path), session="s1")
        asked = decide("defer", big)
        assert asked.decision == "deny" and "routed to the control plane" in asked.reason
        shown = api(server.base, "GET", f"/api/v1/approvals/{approval_id_of(asked.to_json())}",
                    org.tokens["ops1"])["input"]
        assert len(json.dumps(shown)) <= MAX_SHOWN
        assert shown["input"]["command"] == "ssh prod-db uptime"
        assert shown["input"]["description"].startswith(
            "D" * 4096 + " [... 2995904 more characters not shown; the runtime's audit log "
            "has the whole action]")
        requests = [e for e in read_entries(layout().audit_dir) if e.get("kind") == "request"]
        assert any(len(json.dumps(e)) > 3_000_000 for e in requests)


def test_approvers_see_the_action_as_written_and_never_its_password(database_url, tmp_path,
                                                                     isolated_home):
    """What an enrolled runtime sends with an ask (the summary, the input, the policy's
    reason, which quotes the command) is redacted as its audit log is: a password option
    never leaves the machine, and an option that is not one (ssh's `-p` port) stays as the
    agent wrote it for the approver to judge."""
    with routed_runtime(database_url, tmp_path, isolated_home) as (server, org, _):
        command = "sshpass -p hunter2hunter2 ssh -p 2222 prod-db uptime"
        asked = decide("defer", Action("Bash", {"command": command}, str(tmp_path)))
        assert asked.decision == "deny" and "routed to the control plane" in asked.reason
        shown = api(server.base, "GET", f"/api/v1/approvals/{approval_id_of(asked.to_json())}",
                    org.tokens["ops1"])
        assert "hunter2" not in json.dumps(shown)
        assert shown["summary"].endswith("ssh -p 2222 prod-db uptime")
        assert "ssh -p 2222 prod-db uptime" in shown["reason"]
