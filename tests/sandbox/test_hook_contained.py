"""End to end with Claude Code's hook shape: an unknown command comes back as allow with a
rewritten command; running that command (as Claude Code's Bash tool would) really is
contained; and the audit log links request, decision, profile and result."""

from __future__ import annotations

import json
import subprocess
import sys

from runestone.audit.query import read_entries

CONTAINED = '[policy]\nname = "contained"\ndefault = "sandbox"\ninclude = ["developer"]\n'


def hook(world, payload: dict) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runestone", "hook", "claude-code"],
                          input=json.dumps(payload), cwd=world.project, env=world.env(),
                          capture_output=True, text=True, timeout=120)


def test_an_unknown_command_runs_contained_and_the_log_tells_the_whole_story(world):
    (world.runestone / "policy.toml").write_text(CONTAINED)
    original = "echo made > built.txt; echo owned > ~/owned"
    pre = {"hook_event_name": "PreToolUse", "session_id": "s-1", "tool_use_id": "toolu_1",
           "tool_name": "Bash", "cwd": str(world.project),
           "tool_input": {"command": original, "description": "build it", "timeout": 60000}}
    answer = hook(world, pre)
    assert answer.returncode == 0, answer.stderr
    output = json.loads(answer.stdout)["hookSpecificOutput"]
    assert output["permissionDecision"] == "allow"
    updated = output["updatedInput"]
    assert updated["description"] == "build it" and updated["timeout"] == 60000
    command = updated["command"]
    assert " sandbox run --request req_" in command
    assert "owned" not in command  # the original is handed over by file, not spliced in

    # Claude Code's Bash tool runs the new command.
    ran = subprocess.run(["bash", "-c", command], cwd=world.project, env=world.env(),
                         capture_output=True, text=True, timeout=120)
    assert (world.project / "built.txt").read_text() == "made\n"
    assert not (world.home / "owned").exists()
    assert "<sandbox_violations>" in ran.stderr and "Read-only file system" in ran.stderr
    # The handed-over command runs once.
    again = subprocess.run(["bash", "-c", command], cwd=world.project, env=world.env(),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 126 and "no pending sandboxed command" in again.stderr

    post = {**pre, "hook_event_name": "PostToolUse", "tool_input": updated,
            "tool_response": {"stdout": ran.stdout, "stderr": ran.stderr,
                              "interrupted": False}}
    assert hook(world, post).returncode == 0

    entries = list(read_entries(world.runestone / "state" / "audit"))
    decision = next(e for e in entries if e["kind"] == "decision")
    request_id = decision["request_id"]
    story = [e for e in entries if e.get("request_id") == request_id]
    kinds = [e["kind"] for e in story]
    assert kinds == ["request", "decision", "result"]
    request, decision, result = story
    assert request["input"]["command"] == original
    assert decision["decision"] == "sandbox"
    assert decision["sandbox"]["profile"] == "default"
    assert len(decision["sandbox"]["profile_hash"]) == 64
    assert result["sandbox"]["profile_hash"] == decision["sandbox"]["profile_hash"]
    assert result["sandbox"]["blocked"] is True
    assert any("owned" in item for item in result["sandbox"]["refused"])


def test_a_known_command_is_allowed_untouched_and_a_dangerous_one_denied(world):
    (world.runestone / "policy.toml").write_text(CONTAINED)
    base = {"hook_event_name": "PreToolUse", "session_id": "s-2", "tool_name": "Bash",
            "cwd": str(world.project)}
    allowed = hook(world, {**base, "tool_use_id": "t1", "tool_input": {"command": "ls"}})
    out = json.loads(allowed.stdout)["hookSpecificOutput"]
    assert out["permissionDecision"] == "allow" and "updatedInput" not in out
    denied = hook(world, {**base, "tool_use_id": "t2",
                          "tool_input": {"command": "rm -rf ~"}})
    assert json.loads(denied.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_hosts_that_cannot_rewrite_are_asked_instead(world):
    """Cursor's beforeShellExecution cannot rewrite a command: the sandbox becomes an ask
    (Cursor's own prompt); nothing is rewritten."""
    (world.runestone / "policy.toml").write_text(CONTAINED)
    payload = {"conversation_id": "c-1", "generation_id": "g-1",
               "hook_event_name": "beforeShellExecution",
               "workspace_roots": [str(world.project)], "command": "cowsay hi",
               "cwd": str(world.project)}
    done = subprocess.run([sys.executable, "-m", "runestone", "hook", "cursor"],
                          input=json.dumps(payload), cwd=world.project, env=world.env(),
                          capture_output=True, text=True, timeout=120)
    assert "sandbox run" not in done.stdout
    entries = list(read_entries(world.runestone / "state" / "audit"))
    decisions = [e for e in entries if e["kind"] == "decision"]
    assert decisions and all(e["decision"] != "sandbox" for e in decisions)
    assert "cannot run the command inside the sandbox" in decisions[0]["reason"]


def test_doctor_says_whether_sandboxing_works(world):
    settings = world.base / "settings.json"
    settings.write_text("{}")
    report = subprocess.run([sys.executable, "-m", "runestone", "doctor", "claude-code",
                             "--settings", str(settings)], env=world.env(),
                            capture_output=True, text=True, timeout=120)
    assert "ok    sandbox: works" in report.stdout
    cursor = subprocess.run([sys.executable, "-m", "runestone", "doctor", "cursor",
                             "--settings", str(world.base / "hooks.json")], env=world.env(),
                            capture_output=True, text=True, timeout=120)
    assert "cursor cannot run a rewritten command" in cursor.stdout
