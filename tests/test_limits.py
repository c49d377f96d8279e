"""Limits: caps per session, agent or runtime over a window, counted across concurrent hook
processes; a repeated action stopped at N; the count in the reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from runestone.actions import Action
from runestone.gatekeeper import Gatekeeper
from runestone.limit_counter import LimitCounter
from runestone.policy import PolicyError, compile_policy_text

BASE = '[policy]\nname = "capped"\ndefault = "ask"\ninclude = ["developer"]\n'
CAP = BASE + '''
[[limit]]
id = "git-cap"
program = ["git"]
max = 5
minutes = 60
per = "runtime"
'''
LOOP = BASE + '''
[[limit]]
id = "loop"
repeat = true
max = 3
minutes = 10
per = "session"
decision = "deny"
reason = "The agent seems to be looping."
'''


def test_concurrent_hook_processes_cannot_exceed_a_cap(tmp_path):
    """Twelve real `runestone check` processes race for five places: exactly five win."""
    policy = tmp_path / "policy.toml"
    policy.write_text(CAP, encoding="utf-8")
    env = {**os.environ, "RUNESTONE_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}

    def one(_: int) -> dict:
        out = subprocess.run([sys.executable, "-m", "runestone", "check", "--policy",
                              str(policy), "--command", "git status"], capture_output=True,
                             text=True, env=env, cwd=tmp_path, timeout=120)
        return json.loads(out.stdout)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(12)))
    decisions = sorted(a["decision"] for a in answers)
    assert decisions.count("allow") == 5 and decisions.count("ask") == 7, answers
    over = [a for a in answers if a["decision"] == "ask"]
    assert all("Limit 'git-cap' reached" in a["reason"] and "at most 5 in 60 min" in a["reason"]
               for a in over)
    assert {a["reason"].split("this is call ")[1][:1] for a in over} == {"6"}
    assert "limit:git-cap" in over[0]["rules"]
    # Other programs are not counted against it.
    other = subprocess.run([sys.executable, "-m", "runestone", "check", "--policy",
                            str(policy), "--command", "ls"], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=120)
    assert json.loads(other.stdout)["decision"] == "allow"


def test_a_repeated_action_is_stopped_at_n(tmp_path):
    gatekeeper = Gatekeeper(compile_policy_text(LOOP, source="loop.toml"), home="/home/dev",
                            limits_file=tmp_path / "limits.sqlite")
    same = Action("Bash", {"command": "git status"}, "/home/dev/app", session="s1")
    answers = [gatekeeper.check(same) for _ in range(6)]
    assert [a.decision for a in answers] == ["allow"] * 3 + ["deny"] * 3
    assert "this is call 4" in answers[3].reason and "looping" in answers[3].reason
    assert gatekeeper.check(Action("Bash", {"command": "git diff"}, "/home/dev/app",
                                   session="s1")).decision == "allow"
    assert gatekeeper.check(same._replace(session="s2")).decision == "allow"
    # A second gatekeeper (another hook process) sees the same counts.
    again = Gatekeeper(compile_policy_text(LOOP, source="loop.toml"), home="/home/dev",
                       limits_file=tmp_path / "limits.sqlite")
    assert again.check(same).decision == "deny"


def test_a_window_forgets_old_calls(tmp_path):
    counter = LimitCounter(tmp_path / "limits.sqlite")
    assert [counter.count("l", "k", 2, 1, now=100.0 + i).over for i in range(3)] == \
        [False, False, True]
    assert not counter.count("l", "k", 2, 1, now=161.0).over  # the first left the window


@pytest.mark.parametrize("field", ['max = 0', 'max = "5"', 'per = "team"', 'decision = "allow"',
                                   'minutes = 999999', 'repeat = "yes"', 'colour = "red"'])
def test_a_bad_limit_refuses_the_policy(field):
    text = BASE + f'\n[[limit]]\nid = "x"\nmax = 3\n{field}\n'
    if field.startswith("max"):
        text = BASE + f'\n[[limit]]\nid = "x"\n{field}\n'
    with pytest.raises(PolicyError):
        compile_policy_text(text, source="bad.toml")


def test_limits_are_part_of_the_policy_hash():
    plain = compile_policy_text(BASE, source="p.toml")
    capped = compile_policy_text(CAP, source="p.toml")
    assert plain.hash != capped.hash and not plain.limits and capped.limits[0].max == 5
