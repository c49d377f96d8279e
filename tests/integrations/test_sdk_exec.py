"""The Python SDK's guard and `runestone exec`, against a real runtime."""

from __future__ import annotations

import pytest

from clihelp import run_cli
from runestone.audit.query import read_entries
from runestone.home import layout
from runestone.identity import create_identity


@pytest.fixture
def keeper(isolated_home, tmp_path):
    create_identity(layout())
    policy = tmp_path / "policy.toml"
    policy.write_text('[policy]\ndefault = "ask"\ninclude = ["default"]\n\n'
                      '[[rule]]\nid = "team.report"\ndecision = "allow"\n'
                      'reason = "reports are fine"\ntool = ["make_report"]\n\n'
                      '[[rule]]\nid = "team.no-drop"\ndecision = "deny"\n'
                      'reason = "never drop"\ntool = ["drop_table"]\n')
    from runestone import Gatekeeper

    return Gatekeeper.from_layout(layout(), policy_file=policy)


def test_guard_runs_allowed_calls_and_audits_the_result(keeper):
    from runestone import ToolDenied, guard

    calls = []

    @guard(keeper=keeper)
    def make_report(title: str, pages: int = 1) -> str:
        calls.append(title)
        return f"{title}: {pages} pages"

    @guard(keeper=keeper)
    def drop_table(name: str) -> None:
        calls.append(name)

    @guard(keeper=keeper, tool="something_unknown")
    def other() -> None:
        calls.append("other")

    assert make_report("Q3") == "Q3: 1 pages"
    with pytest.raises(ToolDenied) as denied:
        drop_table("users")
    assert denied.value.decision.decision == "deny" and "never drop" in str(denied.value)
    with pytest.raises(ToolDenied) as asked:
        other()
    assert asked.value.decision.decision == "ask"
    assert calls == ["Q3"]
    entries = list(read_entries(layout().audit_dir))
    request = next(e for e in entries if e["kind"] == "request" and e["tool"] == "make_report")
    assert request["input"] == {"title": "Q3", "pages": 1}
    result = next(e for e in entries if e["kind"] == "result")
    assert result["request_id"] == request["request_id"] and result["result_bytes"] > 0


def test_exec_runs_allowed_commands_and_refuses_denied_ones(isolated_home, tmp_path):
    run_cli("init")
    ran = run_cli("exec", "--", "echo", "hello from exec", cwd=str(tmp_path))
    assert ran.returncode == 0 and ran.stdout == "hello from exec\n"
    failed = run_cli("exec", "--", "false", cwd=str(tmp_path))
    assert failed.returncode == 1
    marker = tmp_path / "must-survive"
    marker.write_text("x")
    refused = run_cli("exec", "--", "rm", "-rf", str(tmp_path), "/", cwd=str(tmp_path))
    assert refused.returncode == 126 and "deny" in refused.stderr and marker.exists()
    deferred = run_cli("exec", "--approval", "defer", "--", "ssh", "prod", "uptime")
    assert deferred.returncode == 126 and "/approve/" in deferred.stderr
    entries = list(read_entries(layout().audit_dir))
    results = [e for e in entries if e["kind"] == "result"]
    assert [r["exit_code"] for r in results] == [0, 1]
    assert results[0]["stdout_bytes"] == len("hello from exec\n")
    assert "hello" not in str(results[0])
    executions = {e["request_id"] for e in entries if e["kind"] == "execution"}
    assert {r["request_id"] for r in results} == executions
