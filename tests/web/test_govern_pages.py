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
