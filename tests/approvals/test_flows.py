"""The wait and defer flows end to end: the gatekeeper, the approval page over real HTTP on
127.0.0.1, and the audit trail that links them."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from runestone.actions import Action
from runestone.audit.query import read_entries
from runestone.audit.verify import verify_log
from runestone.gatekeeper import Gatekeeper
from runestone.policy import load_preset

ACTION = Action("Bash", {"command": "ssh prod-db uptime"}, "/home/dev/app", session="s1")


def fetch(url: str, data: dict | None = None, headers: dict | None = None):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def csrf_of(page_html: str) -> str:
    match = re.search(r"name='csrf' value='([0-9a-f]+)'", page_html)
    assert match, page_html
    return match.group(1)


def gatekeeper_for(runtime, mode: str) -> Gatekeeper:
    _, audit, approvals = runtime
    return Gatekeeper(load_preset("default"), audit=audit, approvals=approvals,
                      approval_mode=mode, home="/home/dev")


def test_defer_flow_over_http(runtime, page):
    where, _, approvals = runtime
    gatekeeper = gatekeeper_for(runtime, "defer")

    first = gatekeeper.check(ACTION)
    assert first.decision == "deny"
    approval = dict(first.approval)
    link, request_id = approval["link"], approval["request"]
    assert link.startswith(f"http://127.0.0.1:{page.port}/approve/") and link in first.reason

    status, html_page = fetch(link)
    assert status == 200 and "ssh prod-db uptime" in html_page and "rce.remote-shell" in html_page
    assert approvals.store.request(request_id).state == "pending"  # looking changes nothing
    assert gatekeeper.check(ACTION).decision == "deny"  # not approved yet: a new deferral

    csrf = csrf_of(html_page)
    assert fetch(link, {"decision": "approve"})[0] == 403  # no CSRF token
    assert fetch(link, {"decision": "approve", "csrf": "0" * 64})[0] == 403
    assert fetch(link, {"decision": "approve", "csrf": csrf},
                 {"Origin": "https://evil.example"})[0] == 403
    connection = http.client.HTTPConnection("127.0.0.1", page.port, timeout=10)
    connection.request("POST", urllib.parse.urlparse(link).path,
                       body=urllib.parse.urlencode({"decision": "approve", "csrf": csrf}),
                       headers={"Host": "attacker.example:80",
                                "Content-Type": "application/x-www-form-urlencoded"})
    assert connection.getresponse().status == 421  # DNS rebinding: wrong Host
    assert approvals.store.request(request_id).state == "pending"

    status, done = fetch(link, {"decision": "approve", "csrf": csrf, "scope": "once"})
    assert status == 200 and "approved" in done.lower()

    retry = gatekeeper.check(ACTION)
    assert retry.decision == "allow" and dict(retry.approval)["request"] == request_id
    assert gatekeeper.check(ACTION).decision == "deny"  # single use: asks again
    assert fetch(link, {"decision": "approve", "csrf": csrf})[0] == 403  # token spent

    trail = [e for e in read_entries(where.audit_dir)
             if e.get("request_id") == request_id
             or (e.get("approval") or {}).get("request") == request_id]
    kinds = [(e["kind"], e.get("decision")) for e in trail]
    assert kinds[:3] == [("request", None), ("decision", "ask"), ("approval", "approved")]
    assert ("execution-approved", None) in kinds and kinds[-1] == ("decision", "allow")
    approval_entry = next(e for e in trail if e["kind"] == "approval")
    assert approval_entry["approver"].endswith("(approval page)")
    assert approval_entry["scope"] == "once"
    identity = approvals.identity
    assert verify_log(where.audit_dir, identity.runtime_id, identity.public_key).ok


def test_a_tampered_or_unknown_link_is_refused(runtime, page):
    gatekeeper = gatekeeper_for(runtime, "defer")
    link = dict(gatekeeper.check(ACTION).approval)["link"]
    body, _, signature = link.rpartition("/")[2].partition(".")
    tampered = link.rsplit("/", 1)[0] + "/" + body[:-2] + "xy." + signature
    status, text = fetch(tampered)
    assert status == 403 and "Refused" in text
    assert fetch(f"http://127.0.0.1:{page.port}/elsewhere")[0] == 404


def _wait_in_subprocess(where_home: str, page_port: int, wait_seconds: str = "60"):
    env = {**os.environ, "RUNESTONE_HOME": where_home,
           "RUNESTONE_APPROVAL_URL": f"http://127.0.0.1:{page_port}"}
    return subprocess.Popen(
        [sys.executable, "-m", "runestone", "check", "--preset", "default", "--approval", "wait",
         "--wait-seconds", wait_seconds, "--cwd", "/home/dev/app", "--command",
         "ssh prod-db uptime"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _link_from(process: subprocess.Popen) -> str:
    for _ in range(50):
        line = process.stderr.readline()
        match = re.search(r"open (http://\S+)", line)
        if match:
            return match.group(1)
        if not line and process.poll() is not None:
            break
    pytest.fail("the waiting gatekeeper printed no approval link")


@pytest.mark.parametrize("choice", ["approve", "deny"])
def test_wait_flow_in_a_real_process(runtime, page, isolated_home, choice):
    process = _wait_in_subprocess(str(isolated_home), page.port)
    try:
        link = _link_from(process)
        status, html_page = fetch(link)
        assert status == 200
        form = {"decision": choice, "csrf": csrf_of(html_page), "reason": "checked with ops"}
        assert fetch(link, form)[0] == 200
        out, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    decision = json.loads(out)
    assert decision["decision"] == ("allow" if choice == "approve" else "deny")
    if choice == "deny":
        assert "checked with ops" in decision["reason"]


def test_wait_gives_up_and_cancels(runtime, page, isolated_home):
    _, _, approvals = runtime
    process = _wait_in_subprocess(str(isolated_home), page.port, wait_seconds="1")
    out, _ = process.communicate(timeout=60)
    decision = json.loads(out)
    assert decision["decision"] == "deny" and "no one decided" in decision["reason"]
    request_id = decision["approval"]["request"]
    assert approvals.store.request(request_id).state == "cancelled"


def test_cli_approves_from_another_terminal(runtime, isolated_home):
    from clihelp import run_cli

    gatekeeper = gatekeeper_for(runtime, "defer")
    request_id = dict(gatekeeper.check(ACTION).approval)["request"]
    listed = run_cli("approvals", "list")
    assert request_id in listed.stdout and "pending" in listed.stdout
    approved = run_cli("approvals", "approve", request_id, "--as", "carol")
    assert approved.returncode == 0, approved.stderr
    assert "approved by carol" in approved.stdout
    assert gatekeeper.check(ACTION).decision == "allow"
    again = run_cli("approvals", "approve", request_id)
    assert again.returncode == 1 and "consumed" in again.stderr
    grant = run_cli("approvals", "grant", "--rule", "rce.remote-shell", "--minutes", "5",
                    "--session", "s1")
    assert grant.returncode == 0 and "grant_" in grant.stdout
    assert gatekeeper.check(ACTION).decision == "allow"
    grant_id = grant.stdout.split(":", 1)[0]
    assert run_cli("approvals", "revoke", grant_id).returncode == 0
    assert gatekeeper.check(ACTION).decision == "deny"
    denied_id = dict(gatekeeper.check(ACTION).approval)["request"]
    assert run_cli("approvals", "deny", denied_id, "--reason", "no").returncode == 0
    shown = json.loads(run_cli("approvals", "show", denied_id).stdout)
    assert shown["state"] == "denied" and shown["decision_reason"] == "no"


def test_the_page_escapes_what_the_agent_wrote(runtime, page):
    gatekeeper = gatekeeper_for(runtime, "defer")
    hostile = Action("Bash", {"command": "ssh prod '<script>alert(1)</script>'"}, "/home/dev/app")
    link = dict(gatekeeper.check(hostile).approval)["link"]
    status, html_page = fetch(link)
    assert status == 200
    assert "<script>" not in html_page and "&lt;script&gt;" in html_page


@pytest.mark.parametrize("minutes", ["²", "9" * 400, "-5", "1e3", "481", "0"])
def test_odd_minutes_on_the_page_are_refused_and_nothing_is_decided(runtime, page, minutes):
    """A rule-session approval lasts 1 to 480 minutes (as on the control plane); anything
    else is refused before the decision is audited or stored (`9` * 400 minutes had
    overflowed the grant's expiry after the request was already approved)."""
    _, _, approvals = runtime
    approval = dict(gatekeeper_for(runtime, "defer").check(ACTION).approval)
    link, request_id = approval["link"], approval["request"]
    csrf = csrf_of(fetch(link)[1])
    status, answer = fetch(link, {"decision": "approve", "csrf": csrf, "scope": "rule-session",
                                  "minutes": minutes})
    assert status == 409 and "minutes" in answer, (status, answer[:300])
    assert approvals.store.request(request_id).state == "pending"
    assert fetch(link, {"decision": "approve", "csrf": csrf, "scope": "rule-session",
                        "minutes": "60"})[0] == 200
    assert approvals.store.request(request_id).state == "approved"


@pytest.mark.parametrize("length", ["-1", "abc", "²", "+5"])
def test_a_form_post_with_an_odd_length_is_refused_at_once(runtime, page, length):
    """A negative Content-Length would have made the page wait for the client to hang up;
    a non-number raised inside the handler and dropped the connection unanswered."""
    link = dict(gatekeeper_for(runtime, "defer").check(ACTION).approval)["link"]
    connection = http.client.HTTPConnection("127.0.0.1", page.port, timeout=5)
    connection.putrequest("POST", urllib.parse.urlparse(link).path)
    connection.putheader("Host", f"127.0.0.1:{page.port}")
    connection.putheader("Content-Type", "application/x-www-form-urlencoded")
    connection.putheader("Content-Length", length)
    connection.endheaders()
    assert connection.getresponse().status == 400
    connection.close()


@pytest.mark.parametrize(("command", "shown", "hidden"), [
    ("ssh -p 2222 prod-db uptime", "ssh -p 2222 prod-db uptime", None),  # -p: a port
    ("sshpass -p hunter2hunter2 ssh -p 2222 prod-db uptime", "ssh -p 2222 prod-db uptime",
     "hunter2"),
])
def test_the_page_shows_the_action_as_written_and_hides_its_password(runtime, page, command,
                                                                      shown, hidden):
    """The approver decides on what the page shows: an option that is not a password stays
    as the agent wrote it; one that is, is redacted there as in the log."""
    _, _, approvals = runtime
    gatekeeper = gatekeeper_for(runtime, "defer")
    decision = gatekeeper.check(Action("Bash", {"command": command}, "/home/dev/app"))
    approval = dict(decision.approval)
    status, html_page = fetch(approval["link"])
    stored = approvals.store.request(approval["request"])
    assert status == 200 and shown in html_page and stored.summary.endswith(shown)
    if hidden:  # nowhere: not in the summary, the policy's reason or how it was read
        assert hidden not in html_page and "[REDACTED:sshpass-password:" in html_page
        assert hidden not in json.dumps([stored.summary, stored.reason, stored.analysis])
