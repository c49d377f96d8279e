"""The framework adapters against the frameworks themselves: LangChain's tools and the
OpenAI Agents SDK's function tools, decided by a real runtime's policy and audited."""

from __future__ import annotations

import asyncio
import json

import pytest

from runestone.audit.query import read_entries
from runestone.home import layout
from runestone.identity import create_identity

POLICY = ('[policy]\ndefault = "ask"\ninclude = ["default"]\n\n'
          '[[rule]]\nid = "team.report"\ndecision = "allow"\nreason = "reports are fine"\n'
          'tool = ["make_report"]\n\n'
          '[[rule]]\nid = "team.no-drop"\ndecision = "deny"\nreason = "never drop"\n'
          'tool = ["drop_table"]\n')


@pytest.fixture
def keeper(isolated_home, tmp_path):
    create_identity(layout())
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    from runestone import Gatekeeper

    return Gatekeeper.from_layout(layout(), policy_file=policy)


def _audited(tool: str) -> tuple[dict, dict | None]:
    entries = list(read_entries(layout().audit_dir))
    request = [e for e in entries if e["kind"] == "request" and e["tool"] == tool][-1]
    result = next((e for e in entries if e["kind"] == "result"
                   and e["request_id"] == request["request_id"]), None)
    return request, result


def test_langchain_tools_are_decided_and_audited(keeper):
    pytest.importorskip("langchain_core", reason="langchain-core is not installed")
    from langchain_core.tools import tool

    from runestone import ToolDenied
    from runestone.adapters.langchain import guard_tool

    ran: list[str] = []

    @tool
    def make_report(title: str, pages: int = 1) -> str:
        """Write a report."""
        ran.append(title)
        return f"{title}: {pages} pages"

    @tool
    def drop_table(name: str) -> str:
        """Drop a table."""
        ran.append(name)
        return "dropped"

    report, drop = guard_tool(make_report, keeper=keeper), guard_tool(drop_table, keeper=keeper)
    assert report.name == "make_report" and report.args == make_report.args
    assert report.invoke({"title": "Q3", "pages": 2}) == "Q3: 2 pages"
    assert asyncio.run(report.ainvoke({"title": "Q4"})) == "Q4: 1 pages"
    with pytest.raises(ToolDenied, match="never drop"):
        drop.invoke({"name": "users"})
    polite = guard_tool(drop_table, keeper=keeper, deny_as_message=True)
    assert polite.invoke({"name": "users"}).startswith("runestone: deny: never drop")
    assert ran == ["Q3", "Q4"]
    request, result = _audited("make_report")
    assert request["input"] == {"title": "Q4", "pages": 1} and request["agent"] == "langchain"
    assert result is not None and result["result_bytes"] > 0
    assert _audited("drop_table")[1] is None  # it never ran


def test_openai_agents_function_tools_are_decided_and_audited(keeper):
    pytest.importorskip("agents", reason="openai-agents is not installed")
    from agents import function_tool
    from agents.tool_context import ToolContext

    from runestone.adapters.openai_agents import guard_function_tool

    ran: list[str] = []

    @function_tool
    def make_report(title: str) -> str:
        """Write a report."""
        ran.append(title)
        return f"report {title}"

    @function_tool
    def drop_table(name: str) -> str:
        """Drop a table."""
        ran.append(name)
        return "dropped"

    def invoke(tool, arguments: dict) -> object:
        text = json.dumps(arguments)
        context = ToolContext(context=None, tool_name=tool.name, tool_call_id="call_1",
                              tool_arguments=text)
        return asyncio.run(tool.on_invoke_tool(context, text))

    report = guard_function_tool(make_report, keeper=keeper)
    assert report.params_json_schema == make_report.params_json_schema
    assert invoke(report, {"title": "Q3"}) == "report Q3"
    answer = invoke(guard_function_tool(drop_table, keeper=keeper), {"name": "users"})
    assert answer.startswith("runestone: deny: never drop")
    assert ran == ["Q3"]
    request, result = _audited("make_report")
    assert request["agent"] == "openai-agents" and request["input"] == {"title": "Q3"}
    assert result is not None
    assert _audited("drop_table")[1] is None
