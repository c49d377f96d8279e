"""The dashboard in a real browser (Debian's headless Chromium via Playwright) against a
real server process and a real enrolled runtime: sign in, a new request appears live in the
inbox, an approval by a quorum of two different people, audit search and one tool call's
timeline, a policy diff and publication, a member added with a role gaining access, an
approver group deleted (refused while a route uses it) and the team's fallback channels set.
A screenshot of each page is saved (see conftest.SHOTS)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from web_helpers import PASSWORD, runestone, sign_in

V1 = '[policy]\nname = "v1"\ndefault = "ask"\ninclude = ["default"]\n'
V2 = V1.replace('"v1"', '"v2"') + (
    '\n[[rule]]\nid = "team.no-curl"\ndecision = "deny"\nreason = "no curl in prod"\n'
    'program = ["curl"]\n\n[[test]]\ncommand = "curl https://example.com"\nexpect = "deny"\n')
HTML = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def world(live, tmp_path_factory):
    """Team core: bob and carol approvers in group "oncall" (quorum 2), dave in no team;
    policy v1 and v2; one real runtime enrolled (env=dev) that has audited a run and a
    deny and shipped its log."""
    team = live.api("POST", "/api/v1/teams", {"name": "core"})["id"]
    for name in ("bob", "carol", "dave"):
        live.api("POST", "/api/v1/users", {"username": name, "password": PASSWORD})
    for name in ("bob", "carol"):
        live.api("PUT", f"/api/v1/teams/{team}/members", {"username": name, "role": "approver"})
    group = live.api("POST", f"/api/v1/teams/{team}/approver-groups",
                     {"name": "oncall", "members": ["bob", "carol"]})["id"]
    live.api("POST", f"/api/v1/teams/{team}/approval-routes", {
        "name": "everything", "levels": [{"group_id": group, "timeout_seconds": 600,
                                          "quorum": 2}]})
    live.api("POST", f"/api/v1/teams/{team}/policies", {"text": V1, "message": "first"})
    live.api("POST", f"/api/v1/teams/{team}/policies", {"text": V2, "message": "no curl"})

    home = tmp_path_factory.mktemp("runtime")
    assert runestone(home, "init").returncode == 0
    enrollment = live.api("POST", f"/api/v1/teams/{team}/enrollment-tokens",
                          {"labels": {"env": "dev"}})["token"]
    enrolled = runestone(home, "enroll", "--server", live.base, "--token", enrollment)
    assert enrolled.returncode == 0, enrolled.stderr
    ran = runestone(home, "exec", "--", "echo", "<b>hi</b>")
    assert ran.returncode == 0, ran.stderr
    hook = json.dumps({"session_id": "s", "cwd": str(home), "tool_name": "Bash",
                       "hook_event_name": "PreToolUse", "tool_input": {"command": "rm -rf ~"},
                       "tool_use_id": "toolu_1"})
    assert '"deny"' in runestone(home, "hook", "claude-code", stdin=hook).stdout
    shipped = runestone(home, "audit", "ship")
    assert shipped.returncode == 0, shipped.stderr
    return {"team": team, "home": home}


def shoot(page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def test_live_inbox_and_an_approval_by_a_quorum_of_two(browser, live, world, shots, tmp_path):
    bob_context = browser.new_context()
    bob = bob_context.new_page()
    bob.set_default_timeout(15_000)
    dialogs: list[str] = []
    bob.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    bob.goto(live.base + "/approvals")
    assert "/login?next=/approvals" in bob.url  # sign in first ...
    shoot(bob, shots, "login")
    sign_in(bob, live, "bob")
    assert bob.url == live.base + "/approvals"  # ... then back where he was going
    assert bob.locator("#inbox-rows tr[data-id]").count() == 0
    bob.evaluate("window.__notReloaded = true")

    # v1 asks for everything; the real runtime takes it, then runs a command that asks.
    live.api("POST", f"/api/v1/teams/{world['team']}/publications", {"number": 1})
    home = world["home"]
    assert runestone(home, "policy", "pull").returncode == 0
    out = tmp_path / "out"  # the agent's project: the runtime's own home is not for agents
    out.mkdir()
    (out / "next.sh").write_text("true\n")
    script = f'echo "{HTML}" > {out}/"<i>out.txt"; cat {out}/*.txt; cat {out}/next.sh | sh'
    waiting = subprocess.Popen([sys.executable, "-m", "runestone", "exec", "--", "sh", "-c",
                                script], env={**os.environ, "RUNESTONE_HOME": str(home)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        row = bob.locator("#inbox-rows tr[data-id]")
        row.first.wait_for(timeout=20_000)  # appears without a reload
        assert bob.evaluate("window.__notReloaded") is True
        assert bob.locator("#live-count").inner_text() == "1"
        shoot(bob, shots, "approvals-inbox")

        row.first.locator("a").click()
        bob.wait_for_url(re.compile(r".*/approvals/\d+$"))
        link = bob.url
        assert HTML in bob.locator("#command").inner_text()  # shown as text, not markup
        assert bob.locator("script:not([src])").count() == 0 and dialogs == []
        commands = bob.locator("#commands").inner_text()
        assert "echo" in commands and "cat" in commands and "sh -c" in commands
        assert "<i>out.txt" in commands  # the redirect target, analysed
        assert "*.txt" in commands
        assert "piped-script" in bob.locator("#opaque").inner_text()  # and why
        shoot(bob, shots, "approval-page")
        bob.fill("#decide input[name=reason]", "looked at the script")
        bob.click("#decide button[value=approve]")
        bob.wait_for_load_state()
        assert "Waiting for a decision" in bob.inner_text("#state")  # one of two
        assert "bob: approve" in bob.inner_text("#votes")
        assert "voted at this level" in bob.inner_text("#not-mine")
        assert waiting.poll() is None  # the agent still waits

        # Carol follows the link (as from a notification), signs in and lands on it.
        carol_context = browser.new_context()
        carol = carol_context.new_page()
        carol.goto(link)
        sign_in(carol, live, "carol")
        assert carol.url == link
        carol.fill("#decide input[name=reason]", "fine by me")
        carol.click("#decide button[value=approve]")
        carol.wait_for_load_state()
        assert "Approved" in carol.inner_text("#state")
        assert "carol: approve" in carol.inner_text("#votes")
        assert carol.locator("#decide").count() == 0  # decided: no more buttons
        shoot(carol, shots, "approval-approved")
        # The runtime verified the server's signed decision and ran the command.
        stdout, stderr = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, stderr
    assert HTML in stdout, (stdout, stderr)
    bob.goto(live.base + "/approvals")
    assert bob.locator("#inbox-rows tr[data-id]").count() == 0
    assert runestone(home, "audit", "ship").returncode == 0
    bob_context.close()
    carol_context.close()

    # The whole story of this tool call, from the approval page, for an auditor (alice).
    alice_context = browser.new_context()
    alice = alice_context.new_page()
    alice.goto(link)
    sign_in(alice, live, "alice")
    alice.click("text=The whole story of this tool call")
    alice.wait_for_url(re.compile(r".*/audit/calls/req_.*"))
    stages = alice.locator("#call-timeline > li > strong").all_inner_texts()
    firsts = [stages.index(s) for s in ("request", "decision", "approval", "execution",
                                        "result")]
    assert firsts == sorted(firsts), stages
    story = alice.inner_text("#call-timeline")
    assert "bob voted approve" in story and "carol voted approve" in story
    assert HTML in story  # escaped, shown as text
    shoot(alice, shots, "audit-call-approved")
    alice.goto(live.base + "/audit")
    alice.click("text=Compliance report")
    assert "intact" in alice.inner_text("#integrity")
    approved = alice.locator("#report-approvals tbody tr").filter(has_text="approved")
    assert "bob, carol" in approved.first.inner_text()
    assert "policy.published" in alice.inner_text("#report-policy")
    shoot(alice, shots, "audit-report")
    alice_context.close()


def test_audit_search_timeline_and_export(browser, live, world, shots):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(live.base + "/audit")
    sign_in(page, live, "alice")
    assert page.url.startswith(live.base + "/audit")
    page.fill("form[aria-label=Search] input[name=decision]", "deny")
    page.click("form[aria-label=Search] button[type=submit]")
    page.wait_for_load_state()
    results = page.locator("#results tbody tr")
    assert results.count() == 1 and "rm -rf" in results.first.inner_text()
    assert "ok" in page.inner_text("#chains")
    shoot(page, shots, "audit-search")
    with page.expect_download() as download:
        page.click("a.button:has-text('JSON Lines')")
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["decision"] == "deny"

    page.fill("form[aria-label=Search] input[name=decision]", "")
    page.fill("form[aria-label=Search] input[name=q]", "hi")
    page.click("form[aria-label=Search] button[type=submit]")
    page.wait_for_load_state()
    page.locator("#results tbody tr a:has-text('timeline')").first.click()
    page.wait_for_url(re.compile(r".*/audit/calls/req_.*"))
    stages = page.locator("#call-timeline > li > strong").all_inner_texts()
    assert stages[:4] == ["request", "decision", "execution", "result"], stages
    assert "<b>hi</b>" in page.inner_text("#call-timeline")  # escaped, shown as text
    shoot(page, shots, "audit-timeline")
    context.close()


def test_policy_diff_and_publish(browser, live, world, shots):
    context = browser.new_context()
    page = context.new_page()
    team = world["team"]
    page.goto(f"{live.base}/teams/{team}/policies")
    sign_in(page, live, "alice")
    page.select_option("select[name=old]", "1")
    page.select_option("select[name=new]", "2")
    page.click("text=Show diff")
    page.wait_for_url(re.compile(r".*/policies/diff\?old=1&new=2"))
    added = page.locator("#diff td.add").all_inner_texts()
    assert any('id = "team.no-curl"' in line for line in added)
    assert any('"v1"' in line for line in page.locator("#diff td.del").all_inner_texts())
    shoot(page, shots, "policy-diff")

    page.goto(f"{live.base}/teams/{team}/policies/2")
    assert "test cases pass" in page.inner_text("#validation")
    page.click("text=Simulate v2")
    page.wait_for_url(re.compile(r".*/policies/2/simulation\?days=30"))
    replayed = int(page.inner_text("#simulation-summary").split()[0])
    assert replayed >= 3  # the runtime's shipped decisions, replayed with v2
    shoot(page, shots, "policy-simulation")
    page.go_back()
    page.fill("input[name=selector]", "env=dev")
    page.click("text=Publish v2")
    page.wait_for_url(f"{live.base}/teams/{team}/policies")
    assert "v2" in page.locator("#publications tbody tr").first.inner_text()
    assert "env=dev" in page.locator("#publications tbody tr").first.inner_text()
    shoot(page, shots, "policies")
    # The runtime takes it.
    assert runestone(world["home"], "policy", "pull").returncode == 0
    assert "version 2" in runestone(world["home"], "status").stdout
    page.goto(f"{live.base}/teams/{team}")
    assert "v2" in page.inner_text("table:has(th:has-text('Runtime'))")
    shoot(page, shots, "team")
    page.goto(live.base + "/")
    chart = page.locator("svg.chart").first  # decisions per day, today's bar stacked
    assert chart.locator("rect.s-allow").count() == 1
    assert chart.locator("rect.s-deny").count() == 1
    assert "fs.rm-" in page.inner_text("main")  # the most denied rule
    shoot(page, shots, "overview")
    context.close()


def test_a_member_added_with_a_role_gains_access(browser, live, world, shots):
    team = world["team"]
    dave_context = browser.new_context()
    dave = dave_context.new_page()
    dave.goto(f"{live.base}/teams/{team}/policies")
    sign_in(dave, live, "dave")
    assert "no such team" in dave.inner_text("main")  # not a member: not even visible

    alice_context = browser.new_context()
    alice = alice_context.new_page()
    alice.goto(f"{live.base}/teams/{team}")
    sign_in(alice, live, "alice")
    alice.select_option("form[action$='/members'] select[name=username]", "dave")
    alice.select_option("form[action$='/members'] select[name=role]", "policy_author")
    alice.click("text=Add or change member")
    alice.wait_for_load_state()
    assert "dave\tpolicy_author" in alice.inner_text("#members")
    shoot(alice, shots, "team-members")
    alice.click("text=Approver groups and routes")
    assert "bob, carol" in alice.inner_text("#groups")
    assert "oncall: quorum 2, 600 s" in alice.inner_text("#routes")
    shoot(alice, shots, "team-approvers")
    # A group a route uses is not deleted: the page says which route. An unused one is.
    alice.click("#groups button[aria-label='Delete group oncall']")
    alice.wait_for_load_state()
    assert "the group decides in the routes everything" in alice.inner_text("p.error")
    assert "oncall" in alice.inner_text("#groups")
    alice.fill("form[action$='/approver-groups'] input[name=name]", "spare")
    alice.fill("form[action$='/approver-groups'] input[name=members]", "dave")
    alice.click("button:has-text('Save group')")
    alice.wait_for_url(f"{live.base}/teams/{team}/approvers")
    assert "spare" in alice.inner_text("#groups")
    alice.click("#groups button[aria-label='Delete group spare']")
    alice.wait_for_url(f"{live.base}/teams/{team}/approvers")
    assert "spare" not in alice.inner_text("#groups")
    assert "oncall" in alice.inner_text("#groups")
    # The channels told of asks no route matches, ticked on the team page.
    mail = live.api("POST", f"/api/v1/teams/{team}/channels", {
        "name": "approvers-mail", "kind": "email", "target": "approvers@example.org"})["id"]
    alice.goto(f"{live.base}/teams/{team}")
    box = f"#approval-notifications input[name=channel_ids][value='{mail}']"
    alice.check(box)
    alice.click("button:has-text('Save approval notifications')")
    alice.wait_for_url(f"{live.base}/teams/{team}#approval-notifications")
    assert alice.is_checked(box)
    assert live.api("GET", f"/api/v1/teams/{team}/approval-settings")[
        "fallback_channel_ids"] == [mail]
    shoot(alice, shots, "team-approval-notifications")

    dave.reload()
    assert "Policies of" in dave.inner_text("h1")
    assert dave.locator("text=Publish v1").count() == 1  # an author may publish
    dave.fill("textarea[name=text]", V1.replace('"v1"', '"v3"'))
    dave.fill("form[action$='/policies'] input[name=message]", "by dave")
    dave.click("text=Validate and save")
    dave.wait_for_url(re.compile(r".*/policies/3$"))
    assert "dave" in dave.inner_text("dl.facts")

    # Tokens: created here, shown once.
    dave.goto(live.base + "/tokens")
    dave.fill("form[action='/tokens'] input[name=name]", "laptop")
    dave.click("text=Create token")
    token = dave.inner_text("#new-token")
    assert token.startswith("rst_")
    shoot(dave, shots, "tokens")
    assert live.api("GET", "/api/v1/me", token=token)["username"] == "dave"
    dave.goto(live.base + "/tokens")
    assert token not in dave.content()
    dave_context.close()
    alice_context.close()


def test_a_manager_revokes_a_runtime_from_the_team_page(browser, live, world, shots,
                                                       tmp_path):
    """A second real runtime, revoked through the team page's form (reason, and its id typed
    to confirm); the row then says who and why, and the runtime's next pull is refused."""
    team = world["team"]
    home = tmp_path / "retired"
    assert runestone(home, "init").returncode == 0
    enrollment = live.api("POST", f"/api/v1/teams/{team}/enrollment-tokens",
                          {"labels": {"env": "retired"}})["token"]
    assert runestone(home, "enroll", "--server", live.base, "--token",
                     enrollment).returncode == 0
    runtime_id = json.loads((home / "identity.json").read_text())["runtime_id"]
    assert runestone(home, "policy", "pull").returncode == 0

    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live.base}/teams/{team}")
    sign_in(page, live, "alice")
    row = page.locator("#runtimes tr", has=page.locator(f"code:text-is('{runtime_id}')"))
    row.locator("summary:has-text('Revoke')").click()
    row.locator("input[name=reason]").fill(HTML + " laptop retired")
    row.locator("input[name=confirm]").fill("rt_wrong")
    row.locator("button:has-text('Revoke this runtime')").click()
    page.wait_for_load_state()
    assert "type its id" in page.inner_text("p.error")
    row = page.locator("#runtimes tr", has=page.locator(f"code:text-is('{runtime_id}')"))
    row.locator("summary:has-text('Revoke')").click()
    row.locator("input[name=reason]").fill(HTML + " laptop retired")
    row.locator("input[name=confirm]").fill(runtime_id)
    row.locator("button:has-text('Revoke this runtime')").click()
    page.wait_for_url(f"{live.base}/teams/{team}#runtimes")
    row = page.locator("#runtimes tr", has=page.locator(f"code:text-is('{runtime_id}')"))
    text = row.inner_text()
    assert "revoked by alice on" in text and HTML + " laptop retired" in text, text
    assert row.locator("form").count() == 0
    shoot(page, shots, "team-runtime-revoked")
    context.close()
    pulled = runestone(home, "policy", "pull")
    assert pulled.returncode != 0 and "revoked by alice" in pulled.stderr, pulled.stderr
