"""The real GitHub Copilot CLI (`copilot -p`, pinned in tests/hosts/package.json) with
Runestone's hooks, against a loopback stand-in for the model API: Copilot's own BYOK
settings (`COPILOT_PROVIDER_BASE_URL`, type `anthropic`, `COPILOT_OFFLINE=true`) point it
at the Messages stand-in, which asks for one `bash` call. `--allow-all-tools` approves every
tool in Copilot itself, so only the hook can stop the call; the oracle is whether the
command's marker file exists.

Copilot CLI runs the hooks in its user-level directory (`~/.copilot/hooks/*.json`, where
`runestone install copilot` writes) in every folder, but a repository's
`.github/hooks/*.json` only in a folder its user trusted (`trustedFolders` in
`~/.copilot/config.json`); both observed below.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import host_kit as kit
import pytest
from model_api import MessagesStandIn

from clihelp import run_cli


@pytest.fixture(scope="module")
def copilot() -> Path:
    return kit.host_program("copilot", "Copilot CLI")


@pytest.fixture
def world(tmp_path, isolated_home):
    kit.govern()
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".copilot").mkdir(parents=True)
    project.mkdir()
    hooks = home / ".copilot" / "hooks" / "runestone.json"
    result = run_cli("install", "copilot", env={"HOME": str(home)})
    assert result.returncode == 0 and str(hooks) in result.stdout, result.stdout
    return home, project, hooks


def _run(copilot: Path, home: Path, project: Path, command: str) -> MessagesStandIn:
    with MessagesStandIn("bash", {"command": command, "description": "test"}) as api:
        env = kit.host_env(home, COPILOT_PROVIDER_BASE_URL=api.url,
                           COPILOT_PROVIDER_TYPE="anthropic", COPILOT_PROVIDER_API_KEY="test",
                           COPILOT_MODEL="claude-sonnet-4", COPILOT_OFFLINE="true")
        result = subprocess.run(
            [str(copilot), "-p", "run the command", "--allow-all-tools", "--output-format",
             "json"], cwd=project, env=env, capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL)
    assert api.tool_sent, (result.stdout[-2000:], result.stderr[-2000:])
    return api


def _runner(copilot: Path, home: Path, project: Path):
    """Copilot CLI run in the project for one command, as the fault cases take it."""
    return lambda command: _run(copilot, home, project, command)


def test_allow_runs_and_deny_does_not(copilot, world):
    home, project, _ = world
    _run(copilot, home, project, f"touch {project}/allowed-marker")
    assert (project / "allowed-marker").exists()
    api = _run(copilot, home, project, f"touch {project}/denied-marker")
    assert not (project / "denied-marker").exists()
    assert "the test denies this marker" in api.said()


def test_ask_is_denied_with_an_approval_link(copilot, world):
    home, project, _ = world
    api = _run(copilot, home, project, f"touch {project}/asked-marker")
    assert not (project / "asked-marker").exists()
    assert "/approve/" in api.said()


def test_a_hook_that_crashes_blocks(copilot, world):
    home, project, _ = world
    kit.check_a_crashing_hook_blocks(_runner(copilot, home, project), project)


def test_a_malformed_event_blocks(copilot, world):
    home, project, hooks = world
    kit.check_a_malformed_event_blocks(_runner(copilot, home, project), project, hooks,
                                       command="bash", first="toolName")


def test_a_hook_that_cannot_start_blocks(copilot, world):
    """Copilot reads any non-zero exit (the shell's 127) as a deny."""
    home, project, hooks = world
    kit.lose_the_interpreter(hooks)
    _run(copilot, home, project, f"touch {project}/allowed-marker")
    assert not (project / "allowed-marker").exists()


def test_a_hook_that_times_out_lets_the_call_through(copilot, world):
    """Observed: Copilot kills a hook that outlives `timeoutSec` and runs the tool;
    `doctor copilot` says so."""
    home, project, hooks = world
    doctor = run_cli("doctor", "copilot", "--settings", str(hooks), env={"HOME": str(home)})
    assert "times out" in doctor.stdout
    kit.edit_hooks(hooks, lambda e: e.update(bash="sleep 60", timeoutSec=1))
    _run(copilot, home, project, f"touch {project}/allowed-marker")
    assert (project / "allowed-marker").exists()


def test_a_daemon_that_is_down_leaves_the_decision_to_the_hook(copilot, world):
    home, project, _ = world
    kit.check_a_stale_socket_leaves_it_to_the_hook(_runner(copilot, home, project), project)


def test_a_daemon_that_dies_mid_request_blocks(copilot, world):
    home, project, _ = world
    kit.check_a_dying_daemon_blocks(_runner(copilot, home, project), project)


def test_repository_hooks_run_only_in_a_trusted_folder(copilot, world):
    """The same hook in the project's `.github/hooks/`: in a folder the user has not
    trusted Copilot skips it and the denied call runs, and `doctor` fails on that install;
    once the folder (or one above it) is trusted, the deny holds and `doctor` passes."""
    home, project, hooks = world
    repo_hooks = project / ".github" / "hooks" / "runestone.json"
    repo_hooks.parent.mkdir(parents=True)
    hooks.rename(repo_hooks)
    env = {"HOME": str(home)}
    _run(copilot, home, project, f"touch {project}/denied-marker")
    assert (project / "denied-marker").exists()
    report = run_cli("doctor", "copilot", "--settings", str(repo_hooks), env=env)
    assert report.returncode == 1 and "trustedFolders" in report.stdout
    (project / "denied-marker").unlink()
    (home / ".copilot" / "config.json").write_text(
        json.dumps({"trustedFolders": [str(project.parent)]}))
    _run(copilot, home, project, f"touch {project}/denied-marker")
    assert not (project / "denied-marker").exists()
    assert run_cli("doctor", "copilot", "--settings", str(repo_hooks), env=env).returncode == 0


def test_a_failed_call_has_its_result_entry(copilot, world):
    """A tool call that runs and fails (here: `touch` into a folder that does not exist)
    still gets its result entry, linked to the request."""
    home, project, _ = world
    results = kit.check_a_failed_call_has_its_result(_runner(copilot, home, project), project)
    assert len(results) == 1, results


def test_a_sandbox_decision_runs_the_command_contained(copilot, world):
    """Copilot CLI applies the hook's `modifiedArgs` (allow with a rewritten command): the
    command runs inside `runestone sandbox run`, the write in the project happens, the one
    outside does not, and the model reads what the sandbox refused."""
    home, project, _ = world
    kit.check_a_sandbox_decision_contains(_runner(copilot, home, project), project, home)
