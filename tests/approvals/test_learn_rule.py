"""Don't ask again: the rule offered when a human approves, on the page and in the CLI,
shown as its TOML text before it is saved, and `policy suggest` from the command line."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from clihelp import run_cli
from runestone.actions import Action
from runestone.gatekeeper import Gatekeeper
from runestone.policy import load_policy

# The test's home lies in a temporary directory, which `dev.local-work` allows: left out.
POLICY = ('[policy]\nname = "mine"\ndefault = "ask"\ninclude = ["developer"]\n'
          'disable = ["dev.local-work"]\n')


@pytest.fixture
def home(runtime, tmp_path, monkeypatch):
    """A home of its own (the rule's `~` anchors resolve there) and a developer policy."""
    where = runtime[0]
    fake_home = tmp_path / "dev"
    (fake_home / "app").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(fake_home))
    where.policy_file.write_text(POLICY, encoding="utf-8")
    return fake_home


def deferred(runtime, home, command: str) -> tuple[Gatekeeper, Action, str, str]:
    where, audit, approvals = runtime
    gatekeeper = Gatekeeper(load_policy(where.policy_file), audit=audit, approvals=approvals,
                            approval_mode="defer", home=str(home))
    action = Action("Bash", {"command": command}, str(home / "app"), session="s1")
    decision = gatekeeper.check(action)
    approval = dict(decision.approval)
    return gatekeeper, action, approval["request"], approval.get("link", "")


def test_cli_offers_the_rule_and_saves_it_only_when_asked(runtime, home):
    where = runtime[0]
    _, _, request_id, _ = deferred(runtime, home, "du -sh ~/.cache/pip")
    shown = run_cli("approvals", "approve", request_id, "--as", "ana")
    assert shown.returncode == 0, shown.stderr
    assert "approved by ana" in shown.stdout and "to stop asking for this" in shown.stdout
    rule = tomllib.loads(shown.stdout.split(":\n\n", 1)[1])["rule"][0]
    assert rule["program"] == ["du"] and rule["path"] == ["~/.cache/pip/**"]
    assert rule["project"] == [str(home / "app")]
    assert where.policy_file.read_text() == POLICY  # shown, not saved

    _, _, second_id, _ = deferred(runtime, home, "du -s ~/.cache/pip")
    saved = run_cli("approvals", "approve", second_id, "--save-rule")
    assert saved.returncode == 0, saved.stderr
    text, _, tail = saved.stdout.partition("saved to ")
    assert "[[rule]]" in text and str(where.policy_file) in tail
    policy = load_policy(where.policy_file)
    assert "learned.du" in {r.id for r in policy.rules}
    again = Action("Bash", {"command": "du -sh ~/.cache/pip/http"}, str(home / "app"))
    assert policy.decide(again, home=str(home)).decision == "allow"
    elsewhere = Action("Bash", {"command": "du -sh ~/.cache/pip/http"}, str(home / "b"))
    assert policy.decide(elsewhere, home=str(home)).decision == "ask"  # scoped to the project


def test_an_enrolled_runtime_does_not_save_a_local_rule(runtime, home):
    where = runtime[0]
    where.remote_policy_file.write_text(POLICY, encoding="utf-8")
    _, _, request_id, _ = deferred(runtime, home, "du -sh ~/.cache/npm")
    result = run_cli("approvals", "approve", request_id, "--save-rule")
    assert result.returncode == 1 and "control plane" in result.stderr
    assert "approved" in result.stdout  # the approval itself stands
    assert where.policy_file.read_text() == POLICY


def test_no_rule_for_what_a_pack_asks(runtime, home):
    _, _, request_id, _ = deferred(runtime, home, "git push origin main")
    result = run_cli("approvals", "approve", request_id, "--save-rule")
    assert result.returncode == 1 and "git.push asks about it" in result.stdout
    assert runtime[0].policy_file.read_text() == POLICY


def test_policy_suggest_from_the_command_line(runtime, home):
    where, _, approvals = runtime
    for name in ("pip", "npm"):
        _, _, request_id, _ = deferred(runtime, home, f"du -sh ~/.cache/{name}")
        approvals.decide(request_id, approve=True, approver="bo")
    listed = run_cli("policy", "suggest", "--json")
    assert listed.returncode == 0, listed.stderr
    result = json.loads(listed.stdout)
    assert result["asks"] == 2 and result["approved"] == 2
    (proposal,) = result["proposals"]
    assert proposal["id"] == "learned.du" and proposal["saved"] == 2
    assert proposal["rule"]["path"] == ["~/.cache/**"] and not proposal["refused"]
    text = run_cli("policy", "suggest")
    assert "saves 2 ask(s)" in text.stdout and "[[rule]]" in text.stdout
    assert run_cli("policy", "suggest", "--save", "learned.nope").returncode == 1
    saved = run_cli("policy", "suggest", "--save", "learned.du")
    assert saved.returncode == 0 and "saved learned.du" in saved.stdout
    assert "learned.du" in {r.id for r in load_policy(where.policy_file).rules}
    after = json.loads(run_cli("policy", "suggest", "--json").stdout)
    assert after["proposals"] == []  # the policy allows them now


def test_the_page_shows_the_rule_and_saves_exactly_what_it_showed(runtime, page, home):
    from test_flows import csrf_of, fetch

    where = runtime[0]
    _, _, request_id, link = deferred(runtime, home, "du -sh ~/.cache/uv")
    status, body = fetch(link)
    assert status == 200 and "ask again</h2>" in body
    shown = re.search(r"<pre id='learned-rule'>(.*?)</pre>", body, re.S)
    assert shown and "program = [&quot;du&quot;]" in shown.group(1)
    digest = re.search(r"name='save_rule' value='([0-9a-f]{64})'", body).group(1)
    csrf = csrf_of(body)

    status, refused = fetch(link, {"decision": "approve", "csrf": csrf, "save_rule": "0" * 64})
    assert status == 409 and "changed since the page was shown" in refused
    assert runtime[2].store.request(request_id).state == "pending"  # nothing decided

    status, done = fetch(link, {"decision": "approve", "csrf": csrf, "save_rule": digest})
    assert status == 200 and "The rule was saved to" in done
    assert runtime[2].store.request(request_id).state == "approved"
    assert "learned.du" in {r.id for r in load_policy(where.policy_file).rules}


def test_the_page_without_the_box_ticked_saves_nothing(runtime, page, home):
    from test_flows import csrf_of, fetch

    _, _, _, link = deferred(runtime, home, "du -sh ~/.cache/ruff")
    status, body = fetch(link)
    status, done = fetch(link, {"decision": "approve", "csrf": csrf_of(body)})
    assert status == 200 and "saved" not in done
    assert runtime[0].policy_file.read_text() == POLICY
