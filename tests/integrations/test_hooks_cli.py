"""Each host's documented input through the real `runestone hook <host>` command line.

Fixtures are the hosts' own examples, with their source named; the output shape and exit
code are what each host reads.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from clihelp import run_cli
from runestone.home import layout
from runestone.identity import create_identity

# Claude Code hooks reference, "PreToolUse input" (https://code.claude.com/docs/en/hooks),
# plus `tool_use_id`, which the same section says is sent.
CLAUDE_PRE = {
    "session_id": "abc123",
    "transcript_path": "/home/user/.claude/projects/.../transcript.jsonl",
    "cwd": "/home/user/my-project",
    "permission_mode": "default",
    "hook_event_name": "PreToolUse",
    "tool_name": "Bash",
    "tool_input": {"command": "npm test"},
    "tool_use_id": "toolu_01ABC123",
}
# Same page, "PostToolUse input".
CLAUDE_POST = {
    "session_id": "abc123",
    "transcript_path": "/Users/.../.claude/projects/.../00893aaf-19fa-41d2-8238-13269b9b3ca0.jsonl",
    "cwd": "/Users/...",
    "permission_mode": "default",
    "hook_event_name": "PostToolUse",
    "tool_name": "Write",
    "tool_input": {"file_path": "/path/to/file.txt", "content": "file content"},
    "tool_response": {"filePath": "/path/to/file.txt", "success": True},
    "tool_use_id": "toolu_01ABC123...",
}
# Same page, "PermissionRequest input".
CLAUDE_PERMISSION = {
    "session_id": "abc123",
    "transcript_path": "/Users/.../.claude/projects/.../00893aaf-19fa-41d2-8238-13269b9b3ca0.jsonl",
    "cwd": "/Users/...",
    "permission_mode": "default",
    "hook_event_name": "PermissionRequest",
    "tool_name": "Bash",
    "tool_input": {"command": "rm -rf node_modules",
                   "description": "Remove node_modules directory"},
    "permission_suggestions": [{"type": "addRules", "rules": [
        {"toolName": "Bash", "ruleContent": "rm -rf node_modules"}],
        "behavior": "allow", "destination": "localSettings"}],
}
# Codex: fields serialised by PreToolUseCommandInput in openai/codex
# codex-rs/hooks/src/events/pre_tool_use.rs (values from its test request).
CODEX_PRE = {
    "session_id": "0197b3c2-0000-7000-8000-000000000000", "turn_id": "turn-1",
    "transcript_path": None, "cwd": "/tmp", "hook_event_name": "PreToolUse",
    "model": "gpt-test", "permission_mode": "default", "tool_name": "Bash",
    "tool_input": {"command": "echo hello"}, "tool_use_id": "call_1",
}
# Gemini CLI hooks reference (google-gemini/gemini-cli docs/hooks), BeforeTool input.
GEMINI_BEFORE = {
    "session_id": "s-1", "transcript_path": "/tmp/t.json", "cwd": "/home/dev/app",
    "hook_event_name": "BeforeTool", "timestamp": "2026-01-01T00:00:00Z",
    "tool_name": "run_shell_command", "tool_input": {"command": "ls -la"},
}
# Cursor hooks docs (https://cursor.com/docs/agent/hooks), beforeShellExecution example.
CURSOR_SHELL = {
    "conversation_id": "conv-123", "generation_id": "gen-456",
    "hook_event_name": "beforeShellExecution", "workspace_roots": ["/home/dev/app"],
    "command": "npm install express", "cwd": "/home/dev/app",
}
# GitHub Copilot hooks configuration (github/docs hooks-configuration.md), preToolUse input.
COPILOT_PRE = {
    "timestamp": 1704614600000, "cwd": "/path/to/project", "toolName": "bash",
    "toolArgs": "{\"command\":\"rm -rf dist\",\"description\":\"Clean build directory\"}",
}

# Cursor's after-events, fields as listed by Cursor's hooks documentation
# (https://cursor.com/docs/agent/hooks; reproduced in Cupcake's Cursor reference,
# https://cupcake.eqtylab.io/reference/harnesses/cursor): output and duration (ms).
CURSOR_AFTER_SHELL = {**CURSOR_SHELL, "hook_event_name": "afterShellExecution",
                      "output": "added 64 packages", "duration": 150}
CURSOR_MCP = {"conversation_id": "conv-123", "generation_id": "gen-456",
              "hook_event_name": "beforeMCPExecution", "workspace_roots": ["/home/dev/app"],
              "tool_name": "database_query", "tool_input": "{\"query\": \"SELECT 1\"}",
              "url": "https://db.example.com/mcp"}
CURSOR_AFTER_MCP = {**CURSOR_MCP, "hook_event_name": "afterMCPExecution",
                    "result_json": "{\"rows\": [[1]]}", "duration": 250}
# GitHub Copilot CLI hooks reference (github/docs, copilot-cli-reference, "Hook event input
# payloads"): camelCase postToolUse / postToolUseFailure, and the PascalCase PostToolUse.
COPILOT_SESSION = {"sessionId": "sess-1", "timestamp": 1704614600000,
                   "cwd": "/path/to/project", "toolName": "bash",
                   "toolArgs": "{\"command\":\"ls\"}"}
COPILOT_POST = {**COPILOT_SESSION, "toolResult": {"resultType": "success",
                                                   "textResultForLlm": "README.md"}}
COPILOT_FAILURE = {**COPILOT_SESSION, "error": "command exited with 2"}
COPILOT_PASCAL_POST = {"hook_event_name": "PostToolUse", "session_id": "sess-2",
                       "timestamp": "2026-01-01T00:00:00Z", "cwd": "/path/to/project",
                       "tool_name": "bash", "tool_input": {"command": "ls"},
                       "tool_result": {"result_type": "success",
                                       "text_result_for_llm": "README.md"}}


@pytest.fixture
def initialised(isolated_home):
    create_identity(layout())
    return isolated_home


def hook(host: str, payload: object, **env: str):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return run_cli("hook", host, stdin=body, env=env or None)


def with_command(payload: dict, command: str) -> dict:
    return {**payload, "tool_input": {**payload.get("tool_input", {}), "command": command}}


def test_claude_code_pre_tool_use_shapes(initialised):
    denied = hook("claude-code", with_command(CLAUDE_PRE, "rm -rf ~"))
    assert denied.returncode == 0, denied.stderr
    output = json.loads(denied.stdout)["hookSpecificOutput"]
    assert output["hookEventName"] == "PreToolUse" and output["permissionDecision"] == "deny"
    assert "home" in output["permissionDecisionReason"]
    # No policy file here, so the `default` preset decides: it allows nothing, `npm test` asks.
    asked = hook("claude-code", CLAUDE_PRE)
    assert json.loads(asked.stdout)["hookSpecificOutput"]["permissionDecision"] == "ask"


def test_claude_code_permission_request_and_post_tool_use(initialised):
    permission = hook("claude-code", {**CLAUDE_PERMISSION,
                                      "tool_input": {"command": "rm -rf ~"}})
    output = json.loads(permission.stdout)["hookSpecificOutput"]
    assert output["hookEventName"] == "PermissionRequest"
    assert output["decision"]["behavior"] == "deny" and output["decision"]["message"]
    post = hook("claude-code", CLAUDE_POST)
    assert post.returncode == 0 and post.stdout == ""
    from runestone.audit.query import read_entries

    results = [e for e in read_entries(layout().audit_dir) if e["kind"] == "result"]
    assert results and results[-1]["call_id"] == "toolu_01ABC123..."
    assert results[-1]["result_bytes"] > 0 and "file content" not in json.dumps(results[-1])


def test_claude_code_post_tool_use_links_to_its_request(initialised):
    pre = {**CLAUDE_PRE, "tool_use_id": "toolu_link", "tool_input": {"command": "ls"}}
    hook("claude-code", pre)
    hook("claude-code", {**CLAUDE_POST, "tool_use_id": "toolu_link", "tool_name": "Bash",
                         "tool_input": {"command": "ls"}, "tool_response": {"stdout": "a"}})
    from runestone.audit.query import read_entries

    entries = list(read_entries(layout().audit_dir))
    request_id = next(e["request_id"] for e in entries
                      if e["kind"] == "request" and e.get("tool_use_id") == "toolu_link")
    result = next(e for e in entries if e["kind"] == "result" and e["call_id"] == "toolu_link")
    assert result["request_id"] == request_id


def test_codex_deny_and_silent_allow(initialised):
    denied = hook("codex", with_command(CODEX_PRE, "rm -rf /"))
    output = json.loads(denied.stdout)["hookSpecificOutput"]
    assert output["permissionDecision"] == "deny" and output["permissionDecisionReason"]
    allowed = hook("codex", with_command(CODEX_PRE, "echo hello"), RUNESTONE_HOME=str(
        initialised))
    assert allowed.returncode == 0


def test_hosts_that_cannot_ask_get_a_deny_with_an_approval_link(initialised):
    # `ssh host` asks under every preset: Codex cannot ask, so it is denied with a link.
    deferred = hook("codex", with_command(CODEX_PRE, "ssh prod-db uptime"))
    reason = json.loads(deferred.stdout)["hookSpecificOutput"]["permissionDecisionReason"]
    assert "/approve/" in reason and "runestone approvals approve" in reason
    request_id = reason.split("runestone approvals approve ")[1].split("`")[0]
    assert run_cli("approvals", "approve", request_id).returncode == 0
    retry = hook("codex", with_command(CODEX_PRE, "ssh prod-db uptime"))
    assert retry.returncode == 0 and retry.stdout.strip() == ""  # allowed: Codex wants nothing
    again = hook("codex", with_command(CODEX_PRE, "ssh prod-db uptime"))
    assert json.loads(again.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_gemini_shapes(initialised):
    denied = hook("gemini", {**GEMINI_BEFORE, "tool_input": {"command": "rm -rf ~"}})
    assert json.loads(denied.stdout) == {"decision": "deny",
                                         "reason": json.loads(denied.stdout)["reason"]}
    assert hook("gemini", {**GEMINI_BEFORE, "hook_event_name": "AfterTool",
                           "tool_response": {"llmContent": "x"}}).stdout.strip() == "{}"


def test_cursor_shapes(initialised):
    denied = hook("cursor", {**CURSOR_SHELL, "command": "rm -rf ~"})
    output = json.loads(denied.stdout)
    assert output["permission"] == "deny" and output["user_message"] and output["agent_message"]
    asked = hook("cursor", {**CURSOR_SHELL, "command": "ssh prod-db uptime"})
    assert json.loads(asked.stdout)["permission"] == "ask"
    read = hook("cursor", {**CURSOR_SHELL, "hook_event_name": "beforeReadFile",
                           "file_path": "/home/dev/.ssh/id_rsa", "content": "x"})
    assert json.loads(read.stdout)["permission"] == "deny"


def test_cursor_mcp_arguments_as_text(initialised):
    """Cursor sends an MCP tool's arguments as a JSON string. Text that is not JSON is judged
    as text; JSON holding NaN or 1e999 is malformed (read as text, its arguments would hide
    from the rules that look at them), so it is denied with exit 2."""
    plain = hook("cursor", {**CURSOR_MCP, "tool_input": "just some words"})
    assert plain.returncode == 0 and json.loads(plain.stdout)["permission"] in ("ask", "deny")
    for number in ("NaN", "1e999"):
        odd = hook("cursor", {**CURSOR_MCP, "tool_input": f'{{"query": "x", "n": {number}}}'})
        assert odd.returncode == 2, (odd.stdout, odd.stderr)
        assert "malformed JSON" in odd.stderr


def test_copilot_shapes(initialised):
    denied = hook("copilot", {**COPILOT_PRE, "toolArgs": json.dumps({"command": "rm -rf ~"})})
    output = json.loads(denied.stdout)
    assert output["permissionDecision"] == "deny" and output["permissionDecisionReason"]
    with_object = hook("copilot", {**COPILOT_PRE, "toolArgs": {"command": "rm -rf /"}})
    assert json.loads(with_object.stdout)["permissionDecision"] == "deny"


@pytest.mark.parametrize("host", ["claude-code", "codex", "gemini", "cursor", "copilot"])
@pytest.mark.parametrize("body", ["", "{not json", "[]", '{"tool_name": 3}'])
def test_malformed_input_fails_closed_with_exit_2(initialised, host, body):
    result = hook(host, body)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "runestone:" in result.stderr


@pytest.mark.parametrize("number", ["NaN", "-Infinity", "1e999", "9" * 5000])
def test_a_number_json_cannot_carry_is_malformed_input_not_an_internal_error(initialised,
                                                                            number):
    """Python's JSON reader takes NaN and Infinity and reads 1e999 as infinity; none can
    be hashed as canonical JSON. The hook says the input is malformed (it used to call it an
    internal error, found when hashing), and denies with exit 2."""
    body = json.dumps(with_command(CLAUDE_PRE, "ls")).replace(
        '"command": "ls"', f'"command": "ls", "timeout": {number}')
    result = hook("claude-code", body)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "malformed hook input" in result.stderr and "internal" not in result.stderr


@pytest.mark.parametrize("where", ["tool_use_id", "command", "key"])
def test_a_lone_surrogate_is_malformed_input_and_audited(initialised, where):
    """JSON may escape a lone surrogate (`\\ud800`), which UTF-8 cannot carry: read as
    text, it failed later (the call link: an internal error; the audit write: a deny that
    nothing recorded). It is malformed input, refused where it is read, and the refusal is
    in the log."""
    payload = with_command(CLAUDE_PRE, "ls")
    body = json.dumps(payload)
    body = {"tool_use_id": body.replace('"toolu_', '"\\ud800toolu_'),
            "command": body.replace('"command": "ls"', '"command": "ls \\udc00"'),
            "key": body.replace('"command": "ls"', '"command": "ls", "\\ud800": 1')}[where]
    assert "\\u" in body
    result = hook("claude-code", body)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "lone surrogate" in result.stderr and "internal" not in result.stderr
    refused = [e for e in _entries() if e.get("kind") == "decision"]
    assert refused and refused[-1]["decision"] == "deny"
    assert "lone surrogate" in refused[-1]["reason"]


def test_a_broken_policy_fails_closed(initialised):
    layout().policy_file.parent.mkdir(parents=True, exist_ok=True)
    layout().policy_file.write_text('[policy]\ndefault = "maybe"\n')
    result = hook("claude-code", with_command(CLAUDE_PRE, "ls"))
    assert result.returncode == 2 and "policy" in result.stderr


def test_an_unwritable_audit_log_fails_closed(initialised):
    audit_dir = layout().audit_dir
    audit_dir.parent.mkdir(parents=True, exist_ok=True)
    audit_dir.write_text("not a directory")  # every write fails, even for root
    result = hook("claude-code", with_command(CLAUDE_PRE, "ls"))
    if result.returncode == 0:
        output = json.loads(result.stdout)["hookSpecificOutput"]
        assert output["permissionDecision"] == "deny"
        assert "no audit, no allow" in output["permissionDecisionReason"]
    else:
        assert result.returncode == 2


def test_unknown_host_is_an_error():
    result = run_cli("hook", "netscape")
    assert result.returncode == 2 and "unknown host" in result.stderr


def test_install_merges_and_uninstall_removes_only_ours(tmp_path, initialised):
    for host in ("claude-code", "codex", "gemini", "cursor", "copilot"):
        settings = tmp_path / f"{host}.json"
        original = {"theme": "dark", "hooks": {"Other": [{"matcher": "x", "hooks": [
            {"type": "command", "command": "echo mine"}]}]}}
        settings.write_text(json.dumps(original))
        assert run_cli("install", host, "--settings", str(settings)).returncode == 0
        assert run_cli("install", host, "--settings", str(settings)).returncode == 0  # idempotent
        installed = json.loads(settings.read_text())
        assert installed["theme"] == "dark" and installed["hooks"]["Other"]
        ours = [e for e in installed["hooks"] if e != "Other"]
        assert json.dumps(installed).count("from runestone.cli.hook import main") == len(ours)
        assert list(tmp_path.glob(f"{host}.json.runestone-backup-*"))
        if host == "codex":
            _trust_codex_hooks(settings)
        doctor = run_cli("doctor", host, "--settings", str(settings))
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert run_cli("uninstall", host, "--settings", str(settings)).returncode == 0
        assert json.loads(settings.read_text()) == original


def test_doctor_reports_what_fails_open(tmp_path, initialised):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"disableAllHooks": True, "hooks": {"PreToolUse": [
        {"matcher": "*", "hooks": [{"type": "http",
                                    "url": "http://127.0.0.1:9/hooks/claude-code"}]}]}}))
    report = run_cli("doctor", "claude-code", "--settings", str(settings))
    assert report.returncode == 1
    assert "disableAllHooks" in report.stdout and "only the HTTP hook" in report.stdout
    cursor = tmp_path / "cursor.json"
    cursor.write_text(json.dumps({"version": 1, "hooks": {"beforeShellExecution": [
        {"command": f"{os.sys.executable} -m runestone hook cursor"}]}}))
    assert "failClosed" in run_cli("doctor", "cursor", "--settings", str(cursor)).stdout


def _entries():
    from runestone.audit.query import read_entries

    return list(read_entries(layout().audit_dir))


def _linked_result(host: str, tool_prefix: str = "") -> tuple[dict, dict]:
    entries = _entries()
    result = [e for e in entries if e["kind"] == "result" and e["host"] == host][-1]
    request = next(e for e in entries if e["kind"] == "request"
                   and e["request_id"] == result["request_id"])
    assert request["tool"].startswith(tool_prefix)
    return request, result


def test_cursor_after_events_are_recorded_and_linked(initialised):
    hook("cursor", CURSOR_SHELL)
    after = hook("cursor", CURSOR_AFTER_SHELL)
    assert after.returncode == 0 and json.loads(after.stdout) == {}
    request, result = _linked_result("cursor", "Bash")
    assert request["input"] == {"command": "npm install express"}
    assert result["result_bytes"] > 0 and "added 64" not in json.dumps(result)

    hook("cursor", CURSOR_MCP)
    assert json.loads(hook("cursor", CURSOR_AFTER_MCP).stdout) == {}
    request, result = _linked_result("cursor", "mcp__")
    assert request["tool"] == result["tool"] == "mcp__db_example_com__database_query"


def test_copilot_after_events_are_recorded_and_linked(initialised):
    hook("copilot", COPILOT_SESSION)
    post = hook("copilot", COPILOT_POST)
    assert post.returncode == 0 and json.loads(post.stdout) == {}
    request, result = _linked_result("copilot")
    assert request["input"] == {"command": "ls"} and result["result_bytes"] > 0
    assert "README.md" not in json.dumps(result)
    failed = hook("copilot", COPILOT_FAILURE)
    assert failed.returncode == 0
    assert _linked_result("copilot")[1]["request_id"] == request["request_id"]
    pascal = hook("copilot", COPILOT_PASCAL_POST)
    assert pascal.returncode == 0 and json.loads(pascal.stdout) == {}
    assert [e for e in _entries() if e["kind"] == "result"][-1]["call_id"].startswith(
        "session_id:sess-2:")


def test_gemini_after_tool_is_linked_by_session_and_action(initialised):
    hook("gemini", GEMINI_BEFORE)
    after = {**GEMINI_BEFORE, "hook_event_name": "AfterTool",
             "tool_response": {"llmContent": "total 0", "returnDisplay": "total 0"}}
    assert hook("gemini", after).returncode == 0
    request, result = _linked_result("gemini")
    assert request["input"] == {"command": "ls -la"} and result["result_bytes"] > 0


@pytest.mark.parametrize("extra", [{"toolResult": "done"}, {"toolResult": {}},
                                   {"error": {"message": "x"}}, {"toolResult": None}])
def test_copilot_payloads_not_shaped_like_results_are_decided(initialised, extra):
    """Only a documented result or error makes an after-event; anything else is a
    preToolUse and gets a decision (a `{}` would let the call through)."""
    payload = {**COPILOT_SESSION, "toolArgs": json.dumps({"command": "rm -rf ~"}), **extra}
    answer = hook("copilot", payload)
    assert json.loads(answer.stdout)["permissionDecision"] == "deny"


# Claude Code 2.1.332's own schema (the Zod object in the npm package's binary):
# PostToolUseFailure sends tool_name, tool_input, tool_use_id, error, is_interrupt.
CLAUDE_POST_FAILURE = {**CLAUDE_PRE, "hook_event_name": "PostToolUseFailure",
                       "tool_input": {"command": "false"}, "error": "Exit code 1",
                       "is_interrupt": False}


@pytest.mark.parametrize("event", ["PreToolUse", "PermissionRequest", "PostToolUse",
                                   "PostToolUseFailure"])
def test_claude_code_failures_answer_in_the_failing_events_shape(initialised, event):
    """A reply shaped for another event is refused by Claude Code (it then falls back to
    its own prompt), so a failure answers in the shape of the event that failed."""
    result = hook("claude-code", {**CLAUDE_PRE, "hook_event_name": event, "tool_name": 3})
    assert result.returncode == 2 and "runestone:" in result.stderr
    output = json.loads(result.stdout)
    assert output["hookSpecificOutput"]["hookEventName"] == event
    if event == "PermissionRequest":
        assert output["hookSpecificOutput"]["decision"]["behavior"] == "deny"
    elif event == "PreToolUse":
        assert output["hookSpecificOutput"]["permissionDecision"] == "deny"
    else:
        assert output["decision"] == "block" and output["reason"].startswith("runestone:")


def test_claude_code_post_tool_use_failure_is_a_result_entry(initialised):
    hook("claude-code", {**CLAUDE_PRE, "tool_use_id": "toolu_fails",
                         "tool_input": {"command": "false"}})
    failed = hook("claude-code", {**CLAUDE_POST_FAILURE, "tool_use_id": "toolu_fails"})
    assert failed.returncode == 0 and failed.stdout == "", failed.stderr
    entries = _entries()
    request_id = next(e["request_id"] for e in entries
                      if e["kind"] == "request" and e.get("tool_use_id") == "toolu_fails")
    result = next(e for e in entries if e["kind"] == "result" and e["call_id"] == "toolu_fails")
    assert result["request_id"] == request_id and result["is_error"] is True


def test_claude_install_blocks_on_failure_and_doctor_flags_what_fails_open(tmp_path,
                                                                          initialised):
    settings = tmp_path / "settings.json"
    assert run_cli("install", "claude-code", "--settings", str(settings)).returncode == 0
    installed = json.loads(settings.read_text())["hooks"]
    assert set(installed) == {"PreToolUse", "PermissionRequest", "PostToolUse",
                              "PostToolUseFailure"}
    handlers = [h for groups in installed.values() for g in groups for h in g["hooks"]]
    assert handlers and all(h["onFailure"] == "block" for h in handlers)
    assert run_cli("doctor", "claude-code", "--settings", str(settings)).returncode == 0

    # An install from before onFailure: doctor fails, and install again adds it.
    for handler in handlers:
        del handler["onFailure"]
    settings.write_text(json.dumps({"hooks": installed}))
    report = run_cli("doctor", "claude-code", "--settings", str(settings))
    assert report.returncode == 1 and '"onFailure": "block"' in report.stdout
    assert run_cli("install", "claude-code", "--settings", str(settings)).returncode == 0
    assert run_cli("doctor", "claude-code", "--settings", str(settings)).returncode == 0

    # The interpreter the hook names is gone (the host sees exit 127).
    gone = json.loads(settings.read_text())
    for groups in gone["hooks"].values():
        for group in groups:
            for handler in group["hooks"]:
                handler["command"] = handler["command"].replace(
                    json.dumps(os.sys.executable).strip('"'), "/nonexistent/python3")
    settings.write_text(json.dumps(gone))
    report = run_cli("doctor", "claude-code", "--settings", str(settings))
    assert report.returncode == 1 and "/nonexistent/python3 does not exist" in report.stdout


def test_claude_doctor_fails_when_the_http_hooks_daemon_is_down(tmp_path, initialised):
    settings = tmp_path / "settings.json"
    assert run_cli("install", "claude-code", "--http", "--port", "9", "--settings",
                   str(settings)).returncode == 0
    report = run_cli("doctor", "claude-code", "--settings", str(settings))
    assert report.returncode == 1 and "daemon is down" in report.stdout
    assert "blocks every call" in report.stdout


CODEX_PERMISSION = {**CODEX_PRE, "hook_event_name": "PermissionRequest"}


def test_codex_permission_request(initialised):
    """codex-rs/hooks/src/events/permission_request.rs: allow, deny with a message, or no
    decision (Codex asks its user); exit 2 with a reason on stderr denies."""
    denied = hook("codex", with_command(CODEX_PERMISSION, "rm -rf ~"))
    output = json.loads(denied.stdout)["hookSpecificOutput"]
    assert output["hookEventName"] == "PermissionRequest"
    assert output["decision"]["behavior"] == "deny" and output["decision"]["message"]
    asked = hook("codex", with_command(CODEX_PERMISSION, "ssh prod-db uptime"))
    assert asked.returncode == 0 and asked.stdout.strip() == ""
    broken = hook("codex", {**CODEX_PERMISSION, "tool_name": 3})
    assert broken.returncode == 2 and broken.stderr.strip()
    assert json.loads(broken.stdout)["hookSpecificOutput"]["hookEventName"] == \
        "PermissionRequest"


def _trust_codex_hooks(hooks_file, events=("pre_tool_use", "permission_request",
                                           "post_tool_use")) -> None:
    """What Codex writes to config.toml once its user trusted each hook (its hash of the
    hook, the one tests/hosts/test_codex_cli.py shows the real Codex accepts)."""
    from runestone.integrations.install import codex_trust_hash

    installed = json.loads(hooks_file.read_text())["hooks"]
    names = {"pre_tool_use": "PreToolUse", "permission_request": "PermissionRequest",
             "post_tool_use": "PostToolUse"}
    lines = []
    for key in events:
        index = len(installed[names[key]]) - 1
        group = installed[names[key]][index]
        lines.append(f'[hooks.state."{hooks_file}:{key}:{index}:0"]\n'
                     f'trusted_hash = "{codex_trust_hash(key, group, group["hooks"][0])}"\n')
    (hooks_file.parent / "config.toml").write_text("\n".join(lines))


def test_doctor_codex_fails_until_codex_trusts_the_hooks(tmp_path, initialised):
    hooks_file = tmp_path / "hooks.json"
    assert run_cli("install", "codex", "--settings", str(hooks_file)).returncode == 0
    assert "PermissionRequest" in json.loads(hooks_file.read_text())["hooks"]
    untrusted = run_cli("doctor", "codex", "--settings", str(hooks_file))
    assert untrusted.returncode == 1 and "/hooks" in untrusted.stdout
    assert "times out" in untrusted.stdout
    _trust_codex_hooks(hooks_file, events=("pre_tool_use",))
    assert run_cli("doctor", "codex", "--settings", str(hooks_file)).returncode == 1
    _trust_codex_hooks(hooks_file)
    trusted = run_cli("doctor", "codex", "--settings", str(hooks_file))
    assert trusted.returncode == 0, trusted.stdout


@pytest.mark.parametrize("hooks_config", [{"enabled": False}, {"disabled": ["runestone"]}])
def test_doctor_gemini_fails_when_its_settings_skip_the_hook(tmp_path, initialised,
                                                             hooks_config):
    settings = tmp_path / "settings.json"
    assert run_cli("install", "gemini", "--settings", str(settings)).returncode == 0
    healthy = run_cli("doctor", "gemini", "--settings", str(settings))
    assert healthy.returncode == 0
    assert "times out" in healthy.stdout  # what Gemini CLI lets through, said plainly
    data = json.loads(settings.read_text())
    settings.write_text(json.dumps({**data, "hooksConfig": hooks_config}))
    report = run_cli("doctor", "gemini", "--settings", str(settings))
    assert report.returncode == 1 and "hooksConfig" in report.stdout


def test_gemini_mcp_tools_meet_the_mcp_rules(initialised):
    """Gemini CLI 0.61.0 names MCP tools mcp_<server>_<tool> and sends mcp_context; the
    MCP deny rule (publish.mcp-destructive) must see them, not an askable generic tool."""
    by_name = hook("gemini", {**GEMINI_BEFORE, "tool_name": "mcp_github_delete_repository",
                              "tool_input": {"owner": "acme", "repo": "api"}})
    assert json.loads(by_name.stdout)["decision"] == "deny"
    assert "/approve/" not in by_name.stdout
    by_context = hook("gemini", {**GEMINI_BEFORE, "tool_name": "mcp_gh_delete_repository",
                                 "tool_input": {"owner": "acme", "repo": "api"},
                                 "mcp_context": {"server_name": "github",
                                                 "tool_name": "delete_repository"}})
    assert json.loads(by_context.stdout)["decision"] == "deny"
    request = [e for e in _entries() if e["kind"] == "request"][-1]
    assert request["tool"] == "mcp__github__delete_repository"


def test_cursor_names_an_mcp_server_as_configured(initialised, tmp_path):
    project = tmp_path / "app"
    (project / ".cursor").mkdir(parents=True)
    (project / ".cursor" / "mcp.json").write_text(json.dumps({"mcpServers": {"postgres": {
        "command": "npx", "args": ["-y", "@modelcontextprotocol/server-postgres",
                                   "postgresql://localhost/db"]}}}))
    call = {**CURSOR_MCP, "workspace_roots": [str(project)], "url": None,
            "command": "npx -y @modelcontextprotocol/server-postgres postgresql://localhost/db",
            "tool_name": "query", "tool_input": "{\"sql\": \"SELECT 1\"}"}
    hook("cursor", call)
    assert [e for e in _entries() if e["kind"] == "request"][-1]["tool"] == \
        "mcp__postgres__query"
    hook("cursor", {**call, "workspace_roots": [str(tmp_path / "elsewhere")]})
    assert [e for e in _entries() if e["kind"] == "request"][-1]["tool"] == \
        "mcp__unknown__query"


def test_uninstall_removes_the_files_install_created(tmp_path, initialised, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = {"HOME": str(tmp_path / "home")}  # never the real user's
    user_level = tmp_path / "home" / ".copilot" / "hooks" / "runestone.json"
    assert run_cli("install", "copilot", env=home).returncode == 0  # Copilot's default
    assert user_level.exists()
    assert run_cli("uninstall", "copilot", env=home).returncode == 0
    assert not user_level.exists()
    copilot = tmp_path / ".github" / "hooks" / "runestone.json"  # a repository's own
    settings = ("--settings", str(copilot))
    assert run_cli("install", "copilot", *settings, cwd=tmp_path, env=home).returncode == 0
    assert run_cli("install", "copilot", *settings, cwd=tmp_path, env=home).returncode == 0
    assert copilot.exists() and list(copilot.parent.glob("*.runestone-backup-*"))
    assert run_cli("uninstall", "copilot", *settings, cwd=tmp_path, env=home).returncode == 0
    assert not copilot.exists() and not copilot.parent.exists()
    for host in ("codex", "gemini", "cursor"):
        settings = tmp_path / f"{host}.json"
        assert run_cli("install", host, "--settings", str(settings)).returncode == 0
        assert run_cli("uninstall", host, "--settings", str(settings)).returncode == 0
        assert not settings.exists(), host
        assert not list(tmp_path.glob(f"{host}.json.runestone-backup-*")), host


@pytest.mark.parametrize("host", ["claude-code", "codex", "gemini", "cursor", "copilot"])
def test_install_again_points_the_hook_at_this_installation(tmp_path, initialised, host):
    """The fix doctor gives for a missing interpreter is `install` again: it must rewrite
    Runestone's own command (and add the exit-2 guard Codex and Gemini CLI need), not keep
    the stale one beside a second entry."""
    settings = tmp_path / f"{host}.json"
    assert run_cli("install", host, "--settings", str(settings)).returncode == 0
    fresh = settings.read_text()
    stale = fresh.replace(os.sys.executable, "/gone/python3").replace(" || exit 2", "")
    settings.write_text(stale)
    report = run_cli("doctor", host, "--settings", str(settings))
    assert report.returncode == 1 and "/gone/python3" in report.stdout
    if host in ("codex", "gemini"):
        assert "|| exit 2" in report.stdout
    assert run_cli("install", host, "--settings", str(settings)).returncode == 0
    assert json.loads(settings.read_text()) == json.loads(fresh)


@pytest.mark.parametrize(("host", "variable", "relative"), [
    ("claude-code", "CLAUDE_CONFIG_DIR", "settings.json"),
    ("gemini", "GEMINI_CLI_HOME", ".gemini/settings.json"),
    ("codex", "CODEX_HOME", "hooks.json"),
    ("copilot", "COPILOT_HOME", "hooks/runestone.json"),
])
def test_install_writes_where_the_host_reads(tmp_path, initialised, host, variable, relative):
    """Each host's own variable moves its settings; a hook written to the default place
    would then never run."""
    env = {"HOME": str(tmp_path / "home"), variable: str(tmp_path / "moved")}
    assert run_cli("install", host, env=env).returncode == 0
    assert (tmp_path / "moved" / relative).exists()
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.json"))
    assert run_cli("uninstall", host, env=env).returncode == 0



# --- The working directory is not on the hook's sys.path ----------------------------------------

PLANTED = "open(__file__ + '.ran', 'w').close()\ndef main(): pass\n"


def _plant_runestone(project: Path) -> list[Path]:
    """What an agent can write into its own project: a `runestone` package whose every entry
    (the package, `-m runestone`, the hook module) leaves a mark when imported."""
    package = project / "runestone"
    (package / "cli").mkdir(parents=True)
    files = [package / name for name in ("__init__.py", "__main__.py", "cli/__init__.py",
                                         "cli/hook.py")]
    for file in files:
        file.write_text(PLANTED)
    return [file.with_name(file.name + ".ran") for file in files]


def _run_in(project: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], cwd=project, input="{}", capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("host", ["claude-code", "codex", "gemini", "cursor", "copilot"])
def test_a_runestone_package_in_the_project_is_not_imported_by_the_hook(tmp_path, initialised,
                                                                        host):
    """Hosts run hooks in the agent's project. Python puts the working directory first on
    sys.path for `-m` and `-c`, so a planted `runestone/` there was imported in place of
    Runestone and answered every call (the first case shows it with the old command); the
    installed command (-P) imports the real one, which fails closed on this empty input."""
    project = tmp_path / "project"
    marks = _plant_runestone(project)
    old = _run_in(project, f"{os.sys.executable} -m runestone hook {host}")
    assert any(mark.exists() for mark in marks), old.stderr
    for mark in marks:
        mark.unlink(missing_ok=True)
    settings = tmp_path / "settings.json"
    assert run_cli("install", host, "--settings", str(settings)).returncode == 0
    commands = {h.get("command") or h.get("bash") for h in _installed(settings)}
    assert commands
    for command in commands:
        result = _run_in(project, command)
        assert not any(mark.exists() for mark in marks), command
        assert "malformed hook input" in result.stdout + result.stderr, result


def _installed(settings: Path) -> list[dict]:
    handlers = []
    for entries in json.loads(settings.read_text())["hooks"].values():
        for entry in entries:
            handlers += entry.get("hooks", [entry])
    return handlers


@pytest.mark.parametrize("hosts", [[], ["claude-code", "codex"], ["--help"]])
def test_the_hook_entry_wants_one_host(hosts):
    """The installed entry is run by hosts only; anything but one host name is exit 2 (a
    block for every host) with what it wants, not a decision."""
    from runestone.integrations.install import HOOK_ENTRY

    result = subprocess.run([os.sys.executable, "-P", "-c", HOOK_ENTRY, *hosts], input="{}",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "name one host" in result.stderr and not result.stdout


def test_doctor_fails_a_hook_that_imports_from_the_project(tmp_path, initialised):
    """An install from before -P: doctor names the hazard and the fix."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [
        {"type": "command", "command": f"{os.sys.executable} -m runestone hook claude-code",
         "timeout": 600, "onFailure": "block"}]}]}}))
    report = run_cli("doctor", "claude-code", "--settings", str(settings))
    assert report.returncode == 1
    assert "working directory on sys.path" in report.stdout
    assert "runestone install claude-code" in report.stdout
    assert run_cli("install", "claude-code", "--settings", str(settings)).returncode == 0
    assert "working directory" not in run_cli("doctor", "claude-code", "--settings",
                                              str(settings)).stdout
