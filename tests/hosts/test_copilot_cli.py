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
import os
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_faults import dying_daemon, stale_socket
from host_kit import govern, host_program
from model_api import MessagesStandIn

from clihelp import run_cli
from runestone.home import layout

# In place of the host's event, JSON cut off mid-object: an event the hook cannot read.
CUT_OFF_EVENT = "printf '{\"toolName\": ' | "


@pytest.fixture(scope="module")
def copilot() -> Path:
    return host_program("copilot", "Copilot CLI")


@pytest.fixture
def world(tmp_path, isolated_home):
    govern()
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".copilot").mkdir(parents=True)
    project.mkdir()
    hooks = home / ".copilot" / "hooks" / "runestone.json"
    result = run_cli("install", "copilot", env={"HOME": str(home)})
    assert result.returncode == 0 and str(hooks) in result.stdout, result.stdout
    return home, project, hooks


def _edit_hooks(hooks: Path, change) -> None:
    """Apply `change` to each of Runestone's installed entries."""
    data = json.loads(hooks.read_text())
    for entries in data["hooks"].values():
        for entry in entries:
            change(entry)
    hooks.write_text(json.dumps(data))


def _run(copilot: Path, home: Path, project: Path, command: str) -> MessagesStandIn:
    with MessagesStandIn("bash", {"command": command, "description": "test"}) as api:
        env = {"PATH": os.environ["PATH"], "HOME": str(home),
               "RUNESTONE_HOME": os.environ["RUNESTONE_HOME"],
               "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
               "COPILOT_PROVIDER_BASE_URL": api.url, "COPILOT_PROVIDER_TYPE": "anthropic",
               "COPILOT_PROVIDER_API_KEY": "test", "COPILOT_MODEL": "claude-sonnet-4",
               "COPILOT_OFFLINE": "true"}
        result = subprocess.run(
            [str(copilot), "-p", "run the command", "--allow-all-tools", "--output-format",
             "json"], cwd=project, env=env, capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL)
    assert api.tool_sent, (result.stdout[-2000:], result.stderr[-2000:])
    return api


def _said(api: MessagesStandIn) -> str:
    return json.dumps(api.tool_results())


def test_allow_runs_and_deny_does_not(copilot, world):
    home, project, _ = world
    _run(copilot, home, project, f"touch {project}/allowed-marker")
    assert (project / "allowed-marker").exists()
    api = _run(copilot, home, project, f"touch {project}/denied-marker")
    assert not (project / "denied-marker").exists()
    assert "the test denies this marker" in _said(api)


def test_ask_is_denied_with_an_approval_link(copilot, world):
    home, project, _ = world
    api = _run(copilot, home, project, f"touch {project}/asked-marker")
    assert not (project / "asked-marker").exists()
    assert "/approve/" in _said(api)


def test_a_hook_that_crashes_blocks(copilot, world):
    home, project, _ = world
    layout().policy_file.write_text('[policy]\ndefault = "maybe"\n')
    _run(copilot, home, project, f"touch {project}/allowed-marker")
    assert not (project / "allowed-marker").exists()


def test_a_malformed_event_blocks(copilot, world):
    home, project, hooks = world
    _edit_hooks(hooks, lambda e: e.update(bash=CUT_OFF_EVENT + e["bash"]))
    _run(copilot, home, project, f"touch {project}/allowed-marker")
    assert not (project / "allowed-marker").exists()


def test_a_hook_that_cannot_start_blocks(copilot, world):
    """Copilot reads any non-zero exit (the shell's 127) as a deny."""
    home, project, hooks = world
    hooks.write_text(hooks.read_text().replace(json.dumps(sys.executable)[1:-1],
                                               "/nonexistent/python3"))
    _run(copilot, home, project, f"touch {project}/allowed-marker")
    assert not (project / "allowed-marker").exists()


def test_a_hook_that_times_out_lets_the_call_through(copilot, world):
    """Observed: Copilot kills a hook that outlives `timeoutSec` and runs the tool;
    `doctor copilot` says so."""
    home, project, hooks = world
    doctor = run_cli("doctor", "copilot", "--settings", str(hooks), env={"HOME": str(home)})
    assert "times out" in doctor.stdout
    _edit_hooks(hooks, lambda e: e.update(bash="sleep 60", timeoutSec=1))
    _run(copilot, home, project, f"touch {project}/allowed-marker")
    assert (project / "allowed-marker").exists()


def test_a_daemon_that_is_down_leaves_the_decision_to_the_hook(copilot, world):
    home, project, _ = world
    with stale_socket():
        _run(copilot, home, project, f"touch {project}/allowed-marker")
        _run(copilot, home, project, f"touch {project}/denied-marker")
    assert (project / "allowed-marker").exists()
    assert not (project / "denied-marker").exists()


def test_a_daemon_that_dies_mid_request_blocks(copilot, world):
    home, project, _ = world
    with dying_daemon() as taken:
        _run(copilot, home, project, f"touch {project}/allowed-marker")
    assert taken, "the hook never reached the daemon"
    assert not (project / "allowed-marker").exists()


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
    from runestone.audit.query import read_entries

    home, project, _ = world
    _run(copilot, home, project, f"touch {project}/no-such-dir/allowed-marker")
    entries = list(read_entries(layout().audit_dir))
    request = next(e for e in entries if e["kind"] == "request"
                   and "no-such-dir" in json.dumps(e.get("input")))
    results = [e for e in entries if e["kind"] == "result"
               and e["request_id"] == request["request_id"]]
    assert len(results) == 1, [e["kind"] for e in entries]


def test_a_sandbox_decision_runs_the_command_contained(copilot, world):
    """Copilot CLI applies the hook's `modifiedArgs` (allow with a rewritten command): the
    command runs inside `runestone sandbox run`, the write in the project happens, the one
    outside does not, and the model reads what the sandbox refused."""
    from runestone.audit.query import read_entries
    from runestone.sandbox.probe import unavailable

    why = unavailable()
    if why:
        if os.environ.get("RUNESTONE_TEST_SANDBOX"):
            pytest.fail(f"RUNESTONE_TEST_SANDBOX is set and the sandbox cannot run: {why}")
        pytest.skip(f"sandboxing unavailable here: {why}")
    home, project, _ = world
    layout().policy_file.write_text('[policy]\ndefault = "sandbox"\ninclude = ["default"]\n')
    outside = home / "outside"
    outside.mkdir()
    api = _run(copilot, home, project,
               f"touch {project}/contained-marker; touch {outside}/escaped")
    assert (project / "contained-marker").exists(), _said(api)
    assert not (outside / "escaped").exists()  # the original command would have made it
    assert "sandbox_violations" in _said(api)
    entries = list(read_entries(layout().audit_dir))
    decision = next(e for e in entries if e["kind"] == "decision")
    assert decision["decision"] == "sandbox"
    result = next(e for e in entries if e["kind"] == "result")
    assert result["request_id"] == decision["request_id"] and result["sandbox"]["blocked"]
