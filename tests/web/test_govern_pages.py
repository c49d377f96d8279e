"""The usage and friction pages in a real browser against a real server and an enrolled
runtime: the runtime's calls (allowed, asked, denied) are shipped, the worker rolls them
up, and a person follows the team page's links to the figures and the chart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from web_helpers import PASSWORD, runestone, sign_in


@pytest.fixture(scope="module")
def team(live, tmp_path_factory):
    """Team govern with auditor erin; one runtime that ran echo, was asked for curl twice
    and denied rm -rf ~, its log shipped."""
    team = live.api("POST", "/api/v1/teams", {"name": "govern"})["id"]
    live.api("POST", "/api/v1/users", {"username": "erin", "password": PASSWORD})
    live.api("PUT", f"/api/v1/teams/{team}/members", {"username": "erin", "role": "auditor"})
    home = tmp_path_factory.mktemp("govern-runtime")
    assert runestone(home, "init").returncode == 0
    token = live.api("POST", f"/api/v1/teams/{team}/enrollment-tokens", {})["token"]
    enrolled = runestone(home, "enroll", "--server", live.base, "--token", token)
    assert enrolled.returncode == 0, enrolled.stderr
    assert runestone(home, "exec", "--", "echo", "hi").returncode == 0
    for n, command in enumerate(("curl https://example.com/a", "curl https://example.com/b",
                                 "rm -rf ~")):
        hook = json.dumps({"session_id": "s", "cwd": str(home), "tool_name": "Bash",
                           "hook_event_name": "PreToolUse", "tool_input": {"command": command},
                           "tool_use_id": f"toolu_{n}"})
        answer = runestone(home, "hook", "claude-code", stdin=hook)
        assert answer.returncode == 0, answer.stderr
    shipped = runestone(home, "audit", "ship")
    assert shipped.returncode == 0, shipped.stderr
    deadline = time.time() + 60  # the worker rolls the shipped entries up within ticks
    while time.time() < deadline:
        if live.api("GET", f"/api/v1/teams/{team}/usage")["totals"]["decisions"] >= 4:
            break
        time.sleep(0.5)
    return team


def test_usage_and_friction_pages(browser, live, team, shots: Path):
    usage = live.api("GET", f"/api/v1/teams/{team}/usage")
    assert usage["totals"]["asks"] == 2 and usage["totals"]["denies"] == 1, usage
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live.base}/teams/{team}")
    sign_in(page, live, "erin")
    page.click("a:has-text('Usage')")
    page.wait_for_url(f"{live.base}/teams/{team}/usage")
    assert page.locator("#usage-chart svg.chart rect.s-ask").count() == 1
    assert page.locator("#usage-chart svg.chart rect.s-deny").count() == 1
    totals = page.locator("#usage-totals tbody td").all_inner_texts()
    assert totals == [str(usage["totals"][k]) for k in
                      ("decisions", "asks", "approvals", "denies", "limit_hits")]
    rows = page.locator("#usage-rows tbody tr").all_inner_texts()
    assert any("Bash" in r for r in rows), rows
    page.screenshot(path=str(shots / "usage.png"), full_page=True)

    page.fill("form[aria-label=Window] input[name=days]", "3")
    page.click("form[aria-label=Window] button[type=submit]")
    page.wait_for_url(f"{live.base}/teams/{team}/usage?days=3")
    assert page.locator("#usage-chart svg.chart g").count() == 3

    page.click("main a:has-text('Friction')")
    page.wait_for_url(f"{live.base}/teams/{team}/friction")
    rate = page.inner_text("#ask-rate-total")
    assert rate == f"{round(2 / usage['totals']['decisions'] * 100, 1)}%", rate
    programs = page.locator("#asked-programs tbody tr").all_inner_texts()
    assert programs[0].split() == ["curl", "2"], programs
    page.screenshot(path=str(shots / "friction.png"), full_page=True)
    context.close()


def test_a_member_is_refused_the_figures(browser, live, team):
    live.api("POST", "/api/v1/users", {"username": "mo", "password": PASSWORD})
    live.api("PUT", f"/api/v1/teams/{team}/members", {"username": "mo", "role": "member"})
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live.base}/teams/{team}/friction")
    sign_in(page, live, "mo")
    assert "needs one of the roles" in page.inner_text("main")
    context.close()


POLICY = '[policy]\nname = "learn"\ndefault = "ask"\ninclude = ["developer"]\n'


def check(home: Path, command: str) -> dict:
    """`runestone check` in /srv/app, deferring asks to the server."""
    done = runestone(home, "check", "--approval", "defer", "--cwd", "/srv/app", "--home-dir",
                     "/home/dev", "--command", command)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def learned(live, tmp_path_factory):
    """Team learn: approvers pia and quinn approved curl to api.example.com twice and pia
    denied one such call; rob is its policy author; v1 is published."""
    team = live.api("POST", "/api/v1/teams", {"name": "learn"})["id"]
    tokens = {}
    for name, role in (("pia", "approver"), ("quinn", "approver"), ("rob", "policy_author")):
        live.api("POST", "/api/v1/users", {"username": name, "password": PASSWORD})
        live.api("PUT", f"/api/v1/teams/{team}/members", {"username": name, "role": role})
        tokens[name] = live.login(name)
    live.api("POST", f"/api/v1/teams/{team}/policies", {"text": POLICY})
    live.api("POST", f"/api/v1/teams/{team}/publications", {"number": 1})
    home = tmp_path_factory.mktemp("learn-runtime")
    assert runestone(home, "init").returncode == 0
    token = live.api("POST", f"/api/v1/teams/{team}/enrollment-tokens", {})["token"]
    assert runestone(home, "enroll", "--server", live.base, "--token", token).returncode == 0
    assert runestone(home, "policy", "pull").returncode == 0
    for command, voter, vote in (("curl https://api.example.com/items/1", "pia", "approve"),
                                 ("curl https://api.example.com/items/2", "quinn", "approve"),
                                 ("curl https://api.example.com/admin", "pia", "deny")):
        asked = check(home, command)
        approval = int(asked["approval"]["link"].rsplit("/", 1)[1])
        live.api("POST", f"/api/v1/approvals/{approval}/votes", {"vote": vote},
                 token=tokens[voter])
        check(home, command)  # the retry spends the approval (or meets the denial)
    assert runestone(home, "audit", "ship").returncode == 0
    return team


def test_a_proposal_becomes_a_draft_in_one_step(browser, live, learned, shots: Path):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live.base}/teams/{learned}")
    sign_in(page, live, "rob")
    page.click("main a:has-text('Proposals')")
    page.wait_for_url(f"{live.base}/teams/{learned}/proposals")
    assert "No proposal meets the thresholds" in page.inner_text("main")  # 3 by default

    page.fill("form[aria-label=Thresholds] input[name=min_approvals]", "2")
    page.fill("form[aria-label=Thresholds] input[name=min_people]", "2")
    page.click("form[aria-label=Thresholds] button[type=submit]")
    page.wait_for_url(f"{live.base}/teams/{learned}/proposals")
    proposal = page.locator("section.proposal")
    assert proposal.count() == 1
    assert 'program = ["curl"]' in proposal.inner_text()
    rows = proposal.locator("table.newly tbody tr")
    first = rows.first
    assert "human-denied" in (first.get_attribute("class") or "")
    assert "api.example.com/admin" in first.inner_text() and "denied by pia" in first.inner_text()
    assert "2 people (pia, quinn)" in proposal.inner_text()
    color = first.evaluate("row => getComputedStyle(row).color")
    assert color == "rgb(180, 35, 24)", color  # --deny: shown in red
    page.screenshot(path=str(shots / "proposals.png"), full_page=True)

    page.click("section.proposal button:has-text('Make a draft version')")
    page.wait_for_url(f"{live.base}/teams/{learned}/policies/2")
    assert 'program = ["curl"]' in page.inner_text("main")
    assert live.api("GET", f"/api/v1/teams/{learned}/proposal-settings") == {
        "min_approvals": 2, "min_people": 2}
    context.close()


def test_an_approver_issues_a_grant_a_runtime_uses_and_revokes_it(browser, live, shots,
                                                                 tmp_path_factory):
    team = live.api("POST", "/api/v1/teams", {"name": "granting"})["id"]
    live.api("POST", "/api/v1/users", {"username": "ivy", "password": PASSWORD})
    live.api("PUT", f"/api/v1/teams/{team}/members", {"username": "ivy", "role": "approver"})
    live.api("POST", f"/api/v1/teams/{team}/policies", {"text": POLICY})
    live.api("POST", f"/api/v1/teams/{team}/publications", {"number": 1})
    home = tmp_path_factory.mktemp("grant-runtime")
    assert runestone(home, "init").returncode == 0
    token = live.api("POST", f"/api/v1/teams/{team}/enrollment-tokens",
                     {"labels": {"env": "prod"}})["token"]
    assert runestone(home, "enroll", "--server", live.base, "--token", token).returncode == 0

    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live.base}/teams/{team}")
    sign_in(page, live, "ivy")
    page.click("main a:has-text('Grants')")
    page.wait_for_url(f"{live.base}/teams/{team}/grants")
    form = "form[aria-label='Issue a grant']"
    page.check(f"{form} input[name=kind][value=rule]")
    page.fill(f"{form} textarea[name=rule]", 'program = ["curl"]\ndomain = ["api.example.com"]')
    page.fill(f"{form} input[name=labels]", "env=prod")
    page.fill(f"{form} input[name=uses]", "2")
    page.fill(f"{form} input[name=reason]", "release <b>day</b>")
    page.click(f"{form} button[type=submit]")
    page.wait_for_url(f"{live.base}/teams/{team}/grants")
    row = page.locator("#grants tbody tr").first
    assert "0 of 2" in row.inner_text() and "active" in row.inner_text()
    assert "release <b>day</b>" in row.inner_text()  # escaped, shown as text

    # The runtime pulls it with the policy and spends one use instead of asking.
    assert runestone(home, "policy", "pull").returncode == 0
    decided = check(home, "curl https://api.example.com/v1")
    assert decided["decision"] == "allow", decided
    page.reload()
    assert "1 of 2" in page.locator("#grants tbody tr").first.inner_text()
    page.screenshot(path=str(shots / "grants.png"), full_page=True)

    page.fill("#grants form[aria-label^=Revoke] input[name=reason]", "release is over")
    page.click("#grants form[aria-label^=Revoke] button[type=submit]")
    page.wait_for_url(f"{live.base}/teams/{team}/grants")
    assert "revoked: release is over" in page.locator("#grants tbody tr").first.inner_text()
    assert check(home, "curl https://api.example.com/v2")["decision"] == "deny"  # asks again
    context.close()
