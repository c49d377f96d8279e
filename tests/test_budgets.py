"""Cost budgets: a `[[limit]]` with `budget = "tokens"` counts the tokens the agent host
reports (Gemini CLI's AfterModel payload, through the real hook command) per session; once
spent, the calls the policy would allow ask or are denied, with the tokens in the reason;
other sessions and a policy without budgets are untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from runestone.actions import Action
from runestone.gatekeeper import Gatekeeper
from runestone.policy import PolicyError, compile_policy_text

CWD = "/tmp"
BASE = '[policy]\nname = "budget"\ndefault = "ask"\ninclude = ["developer"]\n'
BUDGET = BASE + '''
[[limit]]
id = "tokens"
budget = "tokens"
max = 1000
minutes = 60
per = "session"
decision = "deny"
reason = "This session has used its share."
'''


def after_model(session: str, tokens: int | None) -> str:
    usage = {} if tokens is None else {"usageMetadata": {"promptTokenCount": tokens - 1,
                                                         "candidatesTokenCount": 1,
                                                         "totalTokenCount": tokens}}
    return json.dumps({"session_id": session, "cwd": str(CWD),
                       "hook_event_name": "AfterModel", "timestamp": "2026-12-06T17:00:00Z",
                       "llm_request": {"model": "gemini-2.5-pro", "messages": []},
                       "llm_response": {"text": "ok", "candidates": [], **usage}})


def before_tool(session: str, command: str) -> str:
    return json.dumps({"session_id": session, "cwd": str(CWD),
                       "hook_event_name": "BeforeTool", "tool_name": "run_shell_command",
                       "tool_input": {"command": command}})


def hook(tmp_path, policy, body: str) -> subprocess.CompletedProcess[str]:
    """The real hook command of an initialised runtime whose policy file is `policy`."""
    return subprocess.run([sys.executable, "-m", "runestone", "hook", "gemini"], input=body,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RUNESTONE_HOME": str(tmp_path)})


def test_a_session_over_its_token_budget_is_stopped(tmp_path):
    env = {**os.environ, "RUNESTONE_HOME": str(tmp_path)}
    assert subprocess.run([sys.executable, "-m", "runestone", "init"], capture_output=True,
                          env=env, timeout=120).returncode == 0
    policy = tmp_path / "policy.toml"
    policy.write_text(BUDGET)
    assert json.loads(hook(tmp_path, policy, before_tool("s1", "git status")).stdout) == {}
    for tokens in (400, 500, None):  # a model call without usage counts nothing
        answer = hook(tmp_path, policy, after_model("s1", tokens))
        assert answer.returncode == 0 and json.loads(answer.stdout) == {}, answer.stderr
    assert json.loads(hook(tmp_path, policy, before_tool("s1", "git status")).stdout) == {}
    assert hook(tmp_path, policy, after_model("s1", 100)).returncode == 0  # 1000: spent
    stopped = hook(tmp_path, policy, before_tool("s1", "git status"))
    reply = json.loads(stopped.stdout)
    assert reply["decision"] == "deny"
    assert "1000 tokens per session s1" in reply["reason"] and "its share" in reply["reason"]
    # Another session has its own budget.
    assert json.loads(hook(tmp_path, policy, before_tool("s2", "git status")).stdout) == {}


def test_usage_is_counted_against_every_budget_it_belongs_to(tmp_path):
    text = BUDGET + '''
[[limit]]
id = "agent-tokens"
budget = "tokens"
max = 300
per = "agent"
'''
    keeper = Gatekeeper(compile_policy_text(text, source="b.toml"), home="/home/dev",
                        limits_file=tmp_path / "limits.sqlite")
    call = Action("Bash", {"command": "git status"}, "/home/dev/app", agent="gemini-cli",
                  session="s1")
    model = Action("model", {}, "/home/dev/app", agent="gemini-cli", session="s9")
    assert keeper.record_usage(model, 300) == ["tokens", "agent-tokens"]
    asked = keeper.check(call)
    assert asked.decision == "ask" and "limit:agent-tokens" in asked.rules
    assert "300 tokens per agent gemini-cli" in asked.reason
    # Without budgets, usage counts against nothing.
    plain = Gatekeeper(compile_policy_text(BASE, source="p.toml"), home="/home/dev",
                       limits_file=tmp_path / "other.sqlite")
    assert plain.record_usage(model, 10**6) == [] and plain.check(call).decision == "allow"


def test_a_budget_is_part_of_the_hash_and_a_call_limit_keeps_its_own():
    calls = BASE + '[[limit]]\nid = "c"\nmax = 5\n'
    assert compile_policy_text(calls, source="a").hash != \
        compile_policy_text(calls.replace('max = 5', 'max = 5\nbudget = "tokens"'),
                            source="a").hash
    from runestone.policy.limits import Limit

    assert "budget" not in Limit("c", 5, 60, "session", "ask").spec()


@pytest.mark.parametrize("extra", ['budget = "money"', 'budget = "tokens"\nrepeat = true'])
def test_a_bad_budget_refuses_the_policy(extra):
    with pytest.raises(PolicyError):
        compile_policy_text(BASE + f'[[limit]]\nid = "b"\nmax = 5\n{extra}\n', source="b")
