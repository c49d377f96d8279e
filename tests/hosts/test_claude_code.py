"""The real Claude Code (`claude -p`, pinned in tests/hosts/package.json) with Runestone's
hooks, against a loopback stand-in for the Messages API that asks for one Bash call.

The oracle is the host's own behaviour: did the Bash tool run (its marker file exists)?
Bash is allowed by Claude Code's own permissions (`--allowedTools Bash`), so only the hook
can stop it (a control run without `onFailure` shows the call then goes through).
Each failure Runestone can meet is made real: a policy that does not load (the hook
crashes), an interpreter that is gone (the hook cannot start), and an `http` hook whose
daemon is down. With `"onFailure": "block"` on every hook, none lets the call through.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import host_kit as kit  # tests/hosts is on sys.path: pytest's rootdir import
import pytest
from model_api import MessagesStandIn

from clihelp import run_cli


@pytest.fixture(scope="module")
def claude() -> Path:
    return kit.host_program("claude", "Claude Code")


@pytest.fixture
def world(tmp_path, isolated_home):
    """A home for Claude Code, a project, and a Runestone home with the test's policy."""
    kit.govern()
    home = tmp_path / "home"
    project = tmp_path / "project"
    (home / ".claude").mkdir(parents=True)
    project.mkdir()
    return home, project


def _install(home: Path, *extra: str) -> Path:
    settings = home / ".claude" / "settings.json"
    result = run_cli("install", "claude-code", "--settings", str(settings), *extra)
    assert result.returncode == 0, result.stderr
    return settings


def _run_claude(claude: Path, home: Path, project: Path, command: str,
                config_dir: Path | None = None
                ) -> tuple[subprocess.CompletedProcess[str], MessagesStandIn]:
    with MessagesStandIn("Bash", {"command": command, "description": "test"}) as api:
        env = kit.host_env(home, ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY="sk-ant-test",
                           CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
                           DISABLE_AUTOUPDATER="1",
                           CLAUDE_CONFIG_DIR=str(config_dir or home / ".claude"))
        result = subprocess.run(
            # Bash is allowed in Claude Code's own settings, so only a hook stops it.
            [str(claude), "-p", "run the command", "--output-format", "json",
             "--max-turns", "3", "--allowedTools", "Bash"], cwd=project, env=env,
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert api.tool_sent, ("Claude Code never asked the stand-in for the tool turn",
                           result.stdout[-2000:], result.stderr[-2000:])
    return result, api


def _runner(claude: Path, home: Path, project: Path):
    """Claude Code run in the project for one command, as the fault cases take it."""
    return lambda command: _run_claude(claude, home, project, command)[1]


def _ran(project: Path, name: str) -> bool:
    return (project / name).exists()


def test_allow_runs_the_tool_and_deny_does_not(claude, world):
    home, project = world
    _install(home)
    result, api = _run_claude(claude, home, project, f"touch {project}/allowed-marker")
    assert _ran(project, "allowed-marker"), (result.stdout[-2000:], api.tool_results())
    result, api = _run_claude(claude, home, project, f"touch {project}/denied-marker")
    assert not _ran(project, "denied-marker")
    assert "the test denies this marker" in json.dumps(api.tool_results())


def test_ask_is_not_run_without_a_human(claude, world):
    home, project = world
    _install(home)
    # Under `claude -p` no one answers the prompt an ask raises.
    _run_claude(claude, home, project, f"touch {project}/asked-marker")
    assert not _ran(project, "asked-marker")


def test_a_hook_that_crashes_blocks(claude, world):
    home, project = world
    _install(home)
    api = kit.check_a_crashing_hook_blocks(_runner(claude, home, project), project)
    assert "policy" in api.said()


def test_a_hook_that_cannot_start_blocks(claude, world):
    home, project = world
    kit.lose_the_interpreter(_install(home))
    _run_claude(claude, home, project, f"touch {project}/allowed-marker")
    assert not _ran(project, "allowed-marker")


def test_an_http_hook_whose_daemon_is_down_blocks(claude, world):
    home, project = world
    settings = _install(home, "--http", "--port", "9")
    data = json.loads(settings.read_text())
    for groups in data["hooks"].values():  # keep only the http hooks
        for group in groups:
            group["hooks"] = [h for h in group["hooks"] if h["type"] == "http"]
    settings.write_text(json.dumps(data))
    _run_claude(claude, home, project, f"touch {project}/allowed-marker")
    assert not _ran(project, "allowed-marker")


def test_without_on_failure_the_host_fails_open(claude, world):
    """The case the fix is for, observed: the same missing interpreter without
    `onFailure: block` lets the call through."""
    home, project = world
    settings = _install(home)
    kit.edit_hooks(settings, lambda h: (h.pop("onFailure", None), h.update(
        command=h["command"].replace(sys.executable, "/nonexistent/python3"))))
    _run_claude(claude, home, project, f"touch {project}/allowed-marker")
    assert _ran(project, "allowed-marker")


def test_a_malformed_event_blocks(claude, world):
    """What the hook cannot read (here: cut-off JSON in place of the host's event) is
    Runestone's exit 2 with the reason, and the host blocks."""
    home, project = world
    settings = _install(home)
    api = kit.check_a_malformed_event_blocks(_runner(claude, home, project), project, settings)
    assert kit.says_malformed(api)


def test_a_daemon_that_is_down_leaves_the_decision_to_the_hook(claude, world):
    home, project = world
    _install(home)
    kit.check_a_stale_socket_leaves_it_to_the_hook(_runner(claude, home, project), project)


def test_a_daemon_that_dies_mid_request_blocks(claude, world):
    home, project = world
    _install(home)
    api = kit.check_a_dying_daemon_blocks(_runner(claude, home, project), project)
    assert "daemon" in api.said()


def test_a_hook_that_times_out_blocks(claude, world):
    """Claude Code kills a hook that outlives its `timeout` (seconds); with `onFailure:
    block` that is a block, not a pass."""
    home, project = world
    settings = _install(home)
    kit.edit_hooks(settings, lambda h: h.update(command="sleep 60", timeout=1))
    _run_claude(claude, home, project, f"touch {project}/allowed-marker")
    assert not _ran(project, "allowed-marker")


def test_without_on_failure_a_hook_that_times_out_lets_the_call_through(claude, world):
    """The control: the same timeout without `onFailure` is no objection."""
    home, project = world
    settings = _install(home)
    kit.edit_hooks(settings, lambda h: (h.pop("onFailure", None),
                                        h.update(command="sleep 60", timeout=1)))
    _run_claude(claude, home, project, f"touch {project}/allowed-marker")
    assert _ran(project, "allowed-marker")


def test_a_sandbox_decision_runs_the_command_contained(claude, world):
    """A `sandbox` decision: Claude Code applies the hook's `updatedInput`, so its Bash tool
    runs the command inside `runestone sandbox run`: the write in the project happens, the
    write outside does not, the model reads what the sandbox refused, and the audit log's
    result entry (from PostToolUse) carries the sandbox's report."""
    home, project = world
    _install(home)
    api, decision, result = kit.check_a_sandbox_decision_contains(
        _runner(claude, home, project), project, home)
    assert "<sandbox_violations>" in api.said()
    assert result["sandbox"]["profile_hash"] == decision["sandbox"]["profile_hash"]
    assert result["sandbox"]["blocked"] is True


@pytest.mark.parametrize("name", ["settings.json", "settings.local.json"])
def test_a_project_setting_that_switches_hooks_off_lets_the_call_through(claude, world, name):
    """`disableAllHooks` in the project's settings overrides the user's hook: the denied
    call runs (observed), and `doctor` run in the project fails on it."""
    home, project = world
    settings = _install(home)
    (project / ".claude").mkdir()
    (project / ".claude" / name).write_text(json.dumps({"disableAllHooks": True}))
    _run_claude(claude, home, project, f"touch {project}/denied-marker")
    assert _ran(project, "denied-marker")
    report = run_cli("doctor", "claude-code", "--settings", str(settings), cwd=str(project))
    assert report.returncode == 1 and f".claude/{name}" in report.stdout


def test_a_failed_call_has_its_result_entry(claude, world):
    """Claude Code sends only `PostToolUseFailure` for a tool that failed: installed, it
    gives the allowed call its result entry, linked to the request."""
    home, project = world
    _install(home)
    results = kit.check_a_failed_call_has_its_result(_runner(claude, home, project), project)
    assert [r.get("is_error") for r in results] == [True], results


def test_install_follows_claude_config_dir(claude, world):
    """With CLAUDE_CONFIG_DIR set, Claude Code reads its settings there and never looks at
    ~/.claude: `install` without --settings writes there, and the deny holds."""
    home, project = world
    config_dir = home / "elsewhere"
    env = {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(config_dir)}
    assert run_cli("install", "claude-code", env=env).returncode == 0
    assert (config_dir / "settings.json").exists()
    assert not (home / ".claude" / "settings.json").exists()
    _run_claude(claude, home, project, f"touch {project}/denied-marker", config_dir)
    assert not _ran(project, "denied-marker")
    assert run_cli("doctor", "claude-code", env=env).returncode == 0

