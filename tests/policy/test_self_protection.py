"""The governor protects itself (the `self-protection` pack, in every preset): no agent
action writes, deletes or moves the runtime's home (wherever RUNESTONE_HOME or the XDG
variables put it), the hosts' hook settings or Runestone's installed code; reading them is
not denied for that."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.actions import Action
from runestone.gatekeeper import Gatekeeper, SessionState
from runestone.home import layout
from runestone.policy import load_preset
from runestone.policy.globs import runestone_places

PROJECT = "/home/dev/project"


def decide(tool: str, tool_input: dict, preset: str = "developer", tmp=None):
    gatekeeper = Gatekeeper(load_preset(preset), sessions=SessionState(), home="/home/dev")
    return gatekeeper.check(Action(tool, tool_input, PROJECT))


def bash(command: str, preset: str = "developer"):
    return decide("Bash", {"command": command}, preset)


def own_files() -> list[str]:
    where = layout()
    return [str(where.policy_file), str(where.remote_policy_file),
            str(where.private_key_file), str(where.audit_dir / "audit-000001.jsonl"),
            str(where.state_dir / "remote-state.json"), str(where.config_dir)]


@pytest.mark.parametrize("preset", ["default", "developer"])
def test_changing_deleting_or_moving_the_runtimes_home_is_denied(preset, isolated_home):
    for path in own_files():
        for command in (f"sed -i s/deny/allow/ {path}", f"rm -rf {path}",
                        f"mv {path} /tmp/elsewhere", f"echo x > {path}",
                        f"tee -a {path}", f"truncate -s 0 {path}",
                        f"python3 -c pass > {path}"):
            decision = bash(command, preset)
            assert decision.decision == "deny", (command, decision)
            assert "self.runestone-home" in decision.rules, command
            assert "governor" in decision.reason
        for tool, tool_input in (("Write", {"file_path": path, "content": "x"}),
                                 ("Edit", {"file_path": path, "old_string": "deny",
                                           "new_string": "allow"})):
            decision = decide(tool, tool_input, preset)
            assert decision.decision == "deny" and "self.runestone-home" in decision.rules


def test_reading_the_runtimes_files_is_not_denied(isolated_home):
    for path in own_files():
        for command in (f"cat {path}", f"ls -l {path}", f"head {path}"):
            decision = bash(command)
            assert "self.runestone-home" not in decision.rules, command
        assert "self.runestone-home" not in decide("Read", {"file_path": path}).rules


def test_a_home_under_xdg_directories_is_protected_too(tmp_path, monkeypatch):
    """No RUNESTONE_HOME: the XDG directories (here under ~/.local/share) are the home."""
    monkeypatch.delenv("RUNESTONE_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".local/share/cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / ".local/share/st"))
    policy = tmp_path / ".local/share/cfg/runestone/policy.toml"
    audit = tmp_path / ".local/share/st/runestone/audit"
    assert runestone_places()["{runestone-config}"] == str(policy.parent)
    for command in (f"sed -i s/a/b/ {policy}", f"rm -r {audit}", f"mv {audit} /tmp/a"):
        assert bash(command).decision == "deny", command
    assert decide("Write", {"file_path": str(policy), "content": "x"}).decision == "deny"


def test_hook_settings_are_protected_and_readable(isolated_home):
    for path in ("/home/dev/.claude/settings.json", f"{PROJECT}/.claude/settings.local.json",
                 "/home/dev/.codex/hooks.json", "/home/dev/.gemini/settings.json",
                 f"{PROJECT}/.cursor/hooks.json", f"{PROJECT}/.github/hooks/runestone.json"):
        for command in (f"sed -i s/runestone/true/ {path}", f"rm {path}", f"mv {path} /tmp/x"):
            decision = bash(command)
            assert decision.decision == "deny", (command, decision)
            assert "self.hook-settings" in decision.rules
        assert decide("Write", {"file_path": path, "content": "{}"}).decision == "deny"
        assert "self.hook-settings" not in bash(f"cat {path}").rules


@settings(max_examples=60, deadline=None)
@given(name=st.text(st.characters(whitelist_categories=("Ll", "Nd"), whitelist_characters="-_."),
                    min_size=1, max_size=12).filter(lambda n: n not in (".", "..")),
       tool=st.sampled_from(["Write", "Edit", "sed", "rm", "mv", "cp-onto"]))
def test_any_file_in_the_home_is_protected_from_any_change(name, tool):
    home = layout().config_dir
    path = os.path.join(home, "state", name)
    if tool in ("Write", "Edit"):
        decision = decide(tool, {"file_path": path, "content": "x", "old_string": "a",
                                 "new_string": "b"})
    else:
        command = {"sed": f"sed -i s/a/b/ '{path}'", "rm": f"rm -f '{path}'",
                   "mv": f"mv '{path}' /tmp/x", "cp-onto": f"cp /tmp/x '{path}'"}[tool]
        decision = bash(command)
    assert decision.decision == "deny" and "self.runestone-home" in decision.rules
