"""The runtime's own executors carry out `sandbox` themselves: `runestone exec` and the
`shell.exec` tool run the command inside the sandbox, and audit what it refused."""

from __future__ import annotations

import os
import subprocess
import sys

from runestone.audit.query import read_entries
from runestone.gatekeeper import Gatekeeper
from runestone.home import layout
from runestone.tools.runner import run_tool
from runestone.tools.settings import ShellSettings, ToolSettings

SANDBOX_ALL = '[policy]\ndefault = "sandbox"\ninclude = ["destructive-fs"]\n'


def test_runestone_exec_runs_a_sandbox_decision_contained(world):
    (world.runestone / "policy.toml").write_text(SANDBOX_ALL)
    done = subprocess.run(
        [sys.executable, "-m", "runestone", "exec", "--", "bash", "-c",
         "echo made > built.txt; echo owned > ~/owned"], cwd=world.project, env=world.env(),
        capture_output=True, text=True, timeout=120)
    assert (world.project / "built.txt").read_text() == "made\n"
    assert not (world.home / "owned").exists()
    assert "<sandbox_violations>" in done.stderr
    entries = list(read_entries(world.runestone / "state" / "audit"))
    decision = next(e for e in entries if e["kind"] == "decision")
    result = next(e for e in entries if e["kind"] == "result")
    assert decision["decision"] == "sandbox" and result["request_id"] == decision["request_id"]
    assert result["sandbox"]["blocked"] is True


def test_shell_exec_runs_a_sandbox_decision_contained(world, monkeypatch):
    monkeypatch.setenv("RUNESTONE_HOME", str(world.runestone))
    monkeypatch.setenv("HOME", str(world.home))
    policy = world.base / "policy.toml"
    policy.write_text(SANDBOX_ALL)
    keeper = Gatekeeper.from_layout(layout(), policy_file=policy)
    settings = ToolSettings(shell=ShellSettings(cwd_prefixes=(str(world.project),),
                                                timeout_seconds=30, output_cap_bytes=10000))
    response = run_tool(keeper, settings, "shell.exec",
                        {"command": "echo made > built.txt; echo owned > ~/owned; echo ok"},
                        cwd=str(world.project), agent="test")
    assert response.decision == "sandbox", response.reason
    assert response.result["stdout"].strip() == "ok"
    assert (world.project / "built.txt").exists() and not (world.home / "owned").exists()
    assert response.result["sandbox"]["blocked"] is True
    assert "<sandbox_violations>" in response.result["stderr"]
    assert os.environ["RUNESTONE_HOME"] == str(world.runestone)
