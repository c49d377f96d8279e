"""The real Codex CLI (`codex exec`, pinned in tests/hosts/package.json) with Runestone's
hooks, against a loopback stand-in for OpenAI's Responses API (a `[model_providers.*]`
entry in its `config.toml` whose `base_url` is the stand-in) that asks for one
`exec_command`. Codex's own approvals and sandbox are bypassed, so only the hook can stop
the call; the oracle is whether the command's marker file exists.

Codex runs a hook from `hooks.json` only once its user trusted it (`/hooks` in the TUI
writes a `[hooks.state]` entry with the hook's hash into `config.toml`). These runs pass
`--dangerously-bypass-hook-trust`, which runs enabled hooks without that entry; one run
without it shows what an untrusted install does (the hook never runs), and `doctor codex`
fails on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import host_kit as kit
import pytest
from model_api import ResponsesStandIn

from clihelp import run_cli
from runestone.integrations.install import codex_trust_hash

CONFIG = """model = "gpt-5"
model_provider = "standin"

[model_providers.standin]
name = "loopback stand-in"
base_url = "{url}"
env_key = "STANDIN_API_KEY"
wire_api = "responses"
"""


@pytest.fixture(scope="module")
def codex() -> Path:
    return kit.host_program("codex", "Codex CLI")


@pytest.fixture
def world(tmp_path, isolated_home):
    kit.govern()
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".codex").mkdir(parents=True)
    project.mkdir()
    hooks = home / ".codex" / "hooks.json"
    assert run_cli("install", "codex", "--settings", str(hooks)).returncode == 0
    return home, project, hooks


def _run(codex: Path, home: Path, project: Path, command: str, *,
         trusted: bool = True, config: str = "", extra: tuple[str, ...] = ()
         ) -> ResponsesStandIn:
    with ResponsesStandIn("exec_command", {"cmd": command}) as api:
        (home / ".codex" / "config.toml").write_text(CONFIG.format(url=api.url) + config)
        env = kit.host_env(home, CODEX_HOME=str(home / ".codex"), STANDIN_API_KEY="test")
        flags = ["--dangerously-bypass-hook-trust"] if trusted else []
        result = subprocess.run(
            [str(codex), "exec", "--skip-git-repo-check", "--ephemeral",
             "--dangerously-bypass-approvals-and-sandbox", *flags, *extra, "run the command"],
            cwd=project, env=env, capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL)
    assert api.tool_sent, (result.stdout[-2000:], result.stderr[-2000:])
    return api


def _runner(codex: Path, home: Path, project: Path):
    """Codex run in the project for one command, as the fault cases take it."""
    return lambda command: _run(codex, home, project, command)


def test_allow_runs_and_deny_does_not(codex, world):
    home, project, _ = world
    _run(codex, home, project, f"touch {project}/allowed-marker")
    assert (project / "allowed-marker").exists()
    api = _run(codex, home, project, f"touch {project}/denied-marker")
    assert not (project / "denied-marker").exists()
    assert "the test denies this marker" in api.said()


def test_ask_is_denied_with_an_approval_link(codex, world):
    home, project, _ = world
    api = _run(codex, home, project, f"touch {project}/asked-marker")
    assert not (project / "asked-marker").exists()
    assert "/approve/" in api.said()


def test_a_hook_that_crashes_blocks(codex, world):
    home, project, _ = world
    api = kit.check_a_crashing_hook_blocks(_runner(codex, home, project), project)
    assert "the policy cannot be loaded" in api.said()


def test_a_hook_that_cannot_start_blocks(codex, world):
    """The shell's complaint about the missing interpreter, turned into exit 2 by the
    installed `|| exit 2`, is the reason Codex gives."""
    home, project, hooks = world
    kit.lose_the_interpreter(hooks)
    api = _run(codex, home, project, f"touch {project}/allowed-marker")
    assert not (project / "allowed-marker").exists()
    assert "No such file or directory" in api.said()


def test_without_the_guard_a_hook_that_cannot_start_lets_the_call_through(codex, world):
    """The case the guard is for, observed: Codex reads exit 127 as a failed hook, not a
    block, and runs the tool; `doctor codex` fails on the unguarded command."""
    home, project, hooks = world
    kit.edit_hooks(hooks, lambda h: h.update(command=h["command"].replace(
        " || exit 2", "").replace(sys.executable, "/nonexistent/python3")))
    _run(codex, home, project, f"touch {project}/allowed-marker")
    assert (project / "allowed-marker").exists()
    assert "|| exit 2" in run_cli("doctor", "codex", "--settings", str(hooks)).stdout


def test_a_hook_that_times_out_lets_the_call_through(codex, world):
    """Observed: Codex kills a hook that outlives its `timeout` and runs the tool."""
    home, project, hooks = world
    kit.edit_hooks(hooks, lambda h: h.update(command="sleep 60", timeout=1))
    _run(codex, home, project, f"touch {project}/allowed-marker")
    assert (project / "allowed-marker").exists()


def test_an_untrusted_hook_never_runs(codex, world):
    """Without the user's trust (or the bypass flag) Codex skips the hook: the denied call
    runs, and `doctor codex` fails on exactly that install."""
    home, project, hooks = world
    _run(codex, home, project, f"touch {project}/denied-marker", trusted=False)
    assert (project / "denied-marker").exists()
    assert run_cli("doctor", "codex", "--settings", str(hooks)).returncode == 1


@pytest.mark.parametrize("setting", ["features", "state"])
def test_settings_that_switch_the_hook_off_let_the_call_through(codex, world, setting):
    """`[features] hooks = false`, or a `[hooks.state]` entry with `enabled = false`, stops
    Codex running the hook even past the trust bypass; `doctor codex` fails on both."""
    home, project, hooks = world
    key = f"{hooks}:pre_tool_use:0:0"
    config = ("\n[features]\nhooks = false\n" if setting == "features"
              else f'\n[hooks.state."{key}"]\nenabled = false\ntrusted_hash = "sha256:0"\n')
    _run(codex, home, project, f"touch {project}/denied-marker", config=config)
    assert (project / "denied-marker").exists()
    report = run_cli("doctor", "codex", "--settings", str(hooks))
    assert report.returncode == 1
    assert ("features" if setting == "features" else "enabled = false") in report.stdout


def test_a_malformed_event_blocks(codex, world):
    """What the hook cannot read (here: cut-off JSON in place of the host's event) is
    Runestone's exit 2 with the reason, and the host blocks."""
    home, project, hooks = world
    api = kit.check_a_malformed_event_blocks(_runner(codex, home, project), project, hooks)
    assert kit.says_malformed(api)


def test_a_daemon_that_is_down_leaves_the_decision_to_the_hook(codex, world):
    home, project, _ = world
    kit.check_a_stale_socket_leaves_it_to_the_hook(_runner(codex, home, project), project)


def test_a_daemon_that_dies_mid_request_blocks(codex, world):
    home, project, _ = world
    api = kit.check_a_dying_daemon_blocks(_runner(codex, home, project), project)
    assert "daemon" in api.said()


def test_a_project_setting_that_switches_hooks_off_lets_the_call_through(codex, world):
    """`[features] hooks = false` in a trusted project's `.codex/config.toml` overrides the
    user's: the denied call runs (observed), and `doctor` run in the project fails on it."""
    home, project, hooks = world
    (project / ".codex").mkdir()
    (project / ".codex" / "config.toml").write_text("[features]\nhooks = false\n")
    _run(codex, home, project, f"touch {project}/denied-marker", extra=("--trust",))
    assert (project / "denied-marker").exists()
    report = run_cli("doctor", "codex", "--settings", str(hooks), cwd=str(project))
    assert report.returncode == 1 and ".codex/config.toml" in report.stdout


def _trust(hooks: Path) -> str:
    """The `[hooks.state]` entries Codex's `/hooks` writes when its user trusts each hook."""
    installed = json.loads(hooks.read_text())["hooks"]
    keys = {"PreToolUse": "pre_tool_use", "PermissionRequest": "permission_request",
            "PostToolUse": "post_tool_use"}
    lines = []
    for event, key in keys.items():
        group = installed[event][0]
        lines.append(f'\n[hooks.state."{hooks}:{key}:0:0"]\n'
                     f'trusted_hash = "{codex_trust_hash(key, group, group["hooks"][0])}"\n')
    return "".join(lines)


def test_a_hook_trusted_as_codex_records_it_runs_and_doctor_agrees(codex, world):
    """Without the bypass flag: the trust entries, hashed as Codex hashes a hook, are the
    ones Codex accepts (the deny holds), and `doctor codex` passes on them."""
    home, project, hooks = world
    trust = _trust(hooks)
    _run(codex, home, project, f"touch {project}/denied-marker", trusted=False, config=trust)
    assert not (project / "denied-marker").exists()
    assert run_cli("doctor", "codex", "--settings", str(hooks)).returncode == 0


def test_a_hook_changed_after_trust_does_not_run_and_doctor_says_so(codex, world):
    """Any change to the hook (here: its timeout) voids Codex's trust: the denied call runs
    (observed), and `doctor` fails, where it used to accept any trust entry."""
    home, project, hooks = world
    trust = _trust(hooks)
    kit.edit_hooks(hooks, lambda h: h.update(timeout=599))
    _run(codex, home, project, f"touch {project}/denied-marker", trusted=False, config=trust)
    assert (project / "denied-marker").exists()
    report = run_cli("doctor", "codex", "--settings", str(hooks))
    assert report.returncode == 1 and "trust it again" in report.stdout


def test_a_sandbox_decision_runs_the_command_contained(codex, world):
    """Codex applies the hook's `updatedInput` (allow with a rewritten command): the
    command runs inside `runestone sandbox run`, the write in the project happens, the one
    outside does not, and the model reads what the sandbox refused."""
    home, project, _ = world
    api, _, _ = kit.check_a_sandbox_decision_contains(_runner(codex, home, project), project, home)
    assert "<sandbox_violations>" in api.said()


def test_a_failed_call_has_its_result_entry(codex, world):
    """A tool call that runs and fails (here: `touch` into a folder that does not exist)
    still gets its result entry, linked to the request."""
    home, project, _ = world
    results = kit.check_a_failed_call_has_its_result(_runner(codex, home, project), project)
    assert len(results) == 1, results
