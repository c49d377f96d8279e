"""The real Gemini CLI (`gemini -p`, pinned in tests/hosts/package.json) with Runestone's
hooks, against a loopback stand-in for the Gemini API (`GOOGLE_GEMINI_BASE_URL`) that asks
for one `run_shell_command`. `--yolo` approves every tool in Gemini itself, so only the hook
can stop the call; the oracle is whether the command's marker file exists.

What Gemini CLI 0.61.0 does with a failing hook (packages/core/src/hooks/hookRunner.ts):
it reads the hook's stdout, or else its stderr, and any text with an exit code other than
0 or 1 is a deny with that text as the reason; exit 1 is only a warning. So a crash
(Runestone's exit 2 with its reason) and an interpreter that is gone (the shell's "No such
file or directory", exit 127) block, and a Python that cannot import Runestone (exit 1)
blocks only through the `|| exit 2` Runestone installs. A hook that times out, or exits
with nothing written, gives no output, and Gemini CLI runs the tool: those fail open,
observed below.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import host_kit as kit
import pytest
from model_api import GeminiStandIn

from clihelp import run_cli
from runestone.home import layout


@pytest.fixture(scope="module")
def gemini() -> Path:
    return kit.host_program("gemini", "Gemini CLI")


@pytest.fixture
def world(tmp_path, isolated_home):
    kit.govern()
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".gemini").mkdir(parents=True)
    project.mkdir()
    settings = home / ".gemini" / "settings.json"
    assert run_cli("install", "gemini", "--settings", str(settings)).returncode == 0
    data = json.loads(settings.read_text())
    # An API key as the sign-in, and no folder-trust prompt in a fresh temporary folder.
    data["security"] = {"auth": {"selectedType": "gemini-api-key"},
                        "folderTrust": {"enabled": False}}
    settings.write_text(json.dumps(data))
    return home, project, settings


def _run(gemini: Path, home: Path, project: Path, command: str) -> GeminiStandIn:
    return _drive(gemini, home, project, "run the command",
                  GeminiStandIn("run_shell_command", {"command": command}))


def _drive(gemini: Path, home: Path, project: Path, prompt: str,
           api: GeminiStandIn) -> GeminiStandIn:
    """Gemini CLI run once in the project with `prompt`, against the stand-in `api`."""
    with api:
        env = kit.host_env(home, GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=api.url)
        result = subprocess.run(
            [str(gemini), "-p", prompt, "--yolo", "-o", "json",
             "-m", "gemini-2.5-flash"], cwd=project, env=env, capture_output=True,
            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert api.tool_sent, (result.stdout[-2000:], result.stderr[-2000:])
    return api


def _runner(gemini: Path, home: Path, project: Path):
    """Gemini CLI run in the project for one command, as the fault cases take it."""
    return lambda command: _run(gemini, home, project, command)


def test_allow_runs_and_deny_does_not(gemini, world):
    home, project, _ = world
    _run(gemini, home, project, f"touch {project}/allowed-marker")
    assert (project / "allowed-marker").exists()
    _run(gemini, home, project, f"touch {project}/denied-marker")
    assert not (project / "denied-marker").exists()


def test_ask_is_denied_with_an_approval_link(gemini, world):
    home, project, _ = world
    api = _run(gemini, home, project, f"touch {project}/asked-marker")
    assert not (project / "asked-marker").exists()
    assert "/approve/" in json.dumps(api.requests[-1])


def test_a_hook_that_crashes_blocks(gemini, world):
    home, project, _ = world
    api = kit.check_a_crashing_hook_blocks(_runner(gemini, home, project), project)
    assert "the policy cannot be loaded" in api.said()


def test_a_hook_that_cannot_start_blocks(gemini, world):
    """Observed: the shell's complaint about the missing interpreter is the reason."""
    home, project, settings = world
    kit.lose_the_interpreter(settings)
    api = _run(gemini, home, project, f"touch {project}/allowed-marker")
    assert not (project / "allowed-marker").exists()
    assert "No such file or directory" in api.said()


def test_a_python_without_runestone_blocks(gemini, world):
    """Python's exit 1 ("No module named runestone") is a warning to Gemini CLI; the
    installed `|| exit 2` makes it a deny with Python's complaint as the reason."""
    home, project, settings = world
    kit.edit_hooks(settings, lambda h: h.update(
        command=h["command"].replace("from runestone.", "from runestone_gone.")))
    api = _run(gemini, home, project, f"touch {project}/allowed-marker")
    assert not (project / "allowed-marker").exists()
    assert "No module named 'runestone_gone'" in api.said()


def test_without_the_guard_a_python_without_runestone_lets_the_call_through(gemini, world):
    """The case the guard is for, observed; `doctor gemini` fails on the unguarded hook."""
    home, project, settings = world
    kit.edit_hooks(settings, lambda h: h.update(command=h["command"].replace(" || exit 2", "")))
    assert "|| exit 2" in run_cli("doctor", "gemini", "--settings", str(settings)).stdout
    kit.edit_hooks(settings, lambda h: h.update(
        command=h["command"].replace("from runestone.", "from runestone_gone.")))
    _run(gemini, home, project, f"touch {project}/allowed-marker")
    assert (project / "allowed-marker").exists()


def test_a_hook_that_exits_without_a_word_lets_the_call_through(gemini, world):
    """Observed: a hook killed before it writes anything (no stdout, no stderr) is no
    objection to Gemini CLI, whatever its exit code; Runestone always writes its reason."""
    home, project, settings = world
    kit.edit_hooks(settings, lambda h: h.update(command="exit 2"))
    _run(gemini, home, project, f"touch {project}/allowed-marker")
    assert (project / "allowed-marker").exists()


def test_a_hook_that_times_out_lets_the_call_through(gemini, world):
    """Observed: Gemini CLI kills a hook that outlives its `timeout` and runs the tool.
    Runestone installs a 600 s timeout; `doctor gemini` says a timeout fails open."""
    home, project, settings = world
    kit.edit_hooks(settings, lambda h: h.update(command="sleep 60", timeout=1000))
    _run(gemini, home, project, f"touch {project}/allowed-marker")
    assert (project / "allowed-marker").exists()


@pytest.mark.parametrize("hooks_config", [{"enabled": False}, {"disabled": ["runestone"]}])
def test_settings_that_skip_the_hook_let_the_call_through(gemini, world, hooks_config):
    """The settings `doctor gemini` fails on, observed: with them the denied call runs."""
    home, project, settings = world
    data = json.loads(settings.read_text())
    data["hooksConfig"] = hooks_config
    settings.write_text(json.dumps(data))
    assert run_cli("doctor", "gemini", "--settings", str(settings)).returncode == 1
    _run(gemini, home, project, f"touch {project}/denied-marker")
    assert (project / "denied-marker").exists()


def test_a_malformed_event_blocks(gemini, world):
    """What the hook cannot read (here: cut-off JSON in place of the host's event) is
    Runestone's exit 2 with the reason, and the host blocks."""
    home, project, settings = world
    api = kit.check_a_malformed_event_blocks(_runner(gemini, home, project), project, settings)
    assert kit.says_malformed(api)


def test_a_daemon_that_is_down_leaves_the_decision_to_the_hook(gemini, world):
    home, project, _ = world
    kit.check_a_stale_socket_leaves_it_to_the_hook(_runner(gemini, home, project), project)


def test_a_daemon_that_dies_mid_request_blocks(gemini, world):
    home, project, _ = world
    api = kit.check_a_dying_daemon_blocks(_runner(gemini, home, project), project)
    assert "daemon" in api.said()


def test_a_workspace_setting_that_switches_hooks_off_lets_the_call_through(gemini, world):
    """`hooksConfig.enabled: false` in the workspace's `.gemini/settings.json` overrides
    the user's hook: the denied call runs (observed), and `doctor` run there fails."""
    home, project, settings = world
    (project / ".gemini").mkdir()
    (project / ".gemini" / "settings.json").write_text(
        json.dumps({"hooksConfig": {"enabled": False}}))
    _run(gemini, home, project, f"touch {project}/denied-marker")
    assert (project / "denied-marker").exists()
    report = run_cli("doctor", "gemini", "--settings", str(settings), cwd=str(project))
    assert report.returncode == 1 and ".gemini/settings.json" in report.stdout


FS_SERVER = (Path(__file__).parents[1] / "mcp" / "npm" / "node_modules" / "@modelcontextprotocol"
             / "server-filesystem" / "dist" / "index.js")
MCP_ALLOW = """
[[rule]]
id = "test.mcp-notes"
decision = "allow"
reason = "the test allows fs's write_file (the paths it names are still judged)"
mcp_server = ["fs"]
mcp_tool = ["write_file"]
"""


def _mcp_write(gemini: Path, home: Path, project: Path, target: Path) -> GeminiStandIn:
    """Gemini CLI with `server-filesystem` as MCP server `fs`, asked to write `target`
    through it, under whatever name Gemini CLI gives that tool."""
    def is_fs_write(name: str) -> bool:
        return name.startswith("mcp_") and "fs" in name and name.endswith("write_file")

    return _drive(gemini, home, project, "write the file",
                  GeminiStandIn("", {"path": str(target), "content": "ssh-ed25519 AAAA test"},
                                match=is_fs_write))


def test_mcp_tools_meet_the_rules_under_gemini_clis_own_names(gemini, world):
    """The real Gemini CLI's name for an MCP tool and its `mcp_context` reach the MCP rules:
    `write_file` of server `fs` to `~/.ssh/authorized_keys` is denied as the host's own
    Write there is (no approval link), while the same tool writing a notes file in the
    project, which the policy allows, runs."""
    if not FS_SERVER.exists():
        if os.environ.get("RUNESTONE_TEST_MCP"):
            pytest.fail(f"{FS_SERVER} is missing: run `npm ci --prefix tests/mcp/npm`")
        pytest.skip("server-filesystem is not installed (npm ci --prefix tests/mcp/npm)")
    home, project, settings = world
    layout().policy_file.write_text(kit.POLICY + MCP_ALLOW)
    (home / ".ssh").mkdir()
    data = json.loads(settings.read_text())
    data["mcpServers"] = {"fs": {"command": "node",
                                 "args": [str(FS_SERVER), str(home), str(project)]}}
    settings.write_text(json.dumps(data))
    api = _mcp_write(gemini, home, project, project / "notes.txt")
    assert (project / "notes.txt").exists(), api.function_responses()
    api = _mcp_write(gemini, home, project, home / ".ssh" / "authorized_keys")
    assert api.called and api.called.startswith("mcp_")
    assert not (home / ".ssh" / "authorized_keys").exists()
    said = api.said()
    assert "SSH access" in said and "/approve/" not in said  # the Write deny rule's reason


def test_a_spent_token_budget_stops_the_next_call(gemini, world):
    """Gemini CLI's AfterModel reports each model call's tokens (11 from the stand-in);
    with a budget of 5 tokens per agent, the model's first answer spends it and the tool
    call it asked for is denied: the marker is not made. The usage is in the audit log."""
    home, project, _ = world
    layout().policy_file.write_text(kit.POLICY + """
[[limit]]
id = "gemini-tokens"
budget = "tokens"
max = 5
per = "agent"
decision = "deny"
""")
    _run(gemini, home, project, f"touch {project}/allowed-marker")
    assert not (project / "allowed-marker").exists()
    from runestone.audit.query import read_entries

    usage = [e for e in read_entries(layout().audit_dir) if e.get("kind") == "usage"]
    assert usage and usage[0]["tokens"] == 11 and usage[0]["budgets"] == ["gemini-tokens"]
    denied = [e for e in read_entries(layout().audit_dir) if e.get("kind") == "decision"
              and "limit:gemini-tokens" in e.get("rules", [])]
    assert denied and "11 tokens per agent gemini-cli" in denied[0]["reason"]


def test_a_failed_call_has_its_result_entry(gemini, world):
    """A tool call that runs and fails (here: `touch` into a folder that does not exist)
    still gets its result entry, linked to the request."""
    home, project, _ = world
    results = kit.check_a_failed_call_has_its_result(_runner(gemini, home, project), project)
    assert len(results) == 1, results


def test_a_sandbox_decision_runs_the_command_contained(gemini, world):
    """Gemini CLI merges the hook's `hookSpecificOutput.tool_input` over the model's
    arguments: the command runs inside `runestone sandbox run`, the write in the project
    happens, the one outside does not, and the model reads what the sandbox refused."""
    home, project, _ = world
    kit.check_a_sandbox_decision_contains(_runner(gemini, home, project), project, home)
