"""The MCP gateway with the official SDK's client session and real MCP servers from PyPI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.client.stdio import stdio_client

from mcp import ClientSession, StdioServerParameters
from runestone.audit.query import read_entries
from runestone.home import layout

pytestmark = pytest.mark.skipif(shutil.which("mcp-server-git") is None,
                                reason="mcp-server-git is not installed")
HERE = Path(__file__).parent
@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git = ["git", "-C", str(path), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (path / "a.txt").write_text("one\n")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    (path / "b.txt").write_text("untracked\n")
    return path


def gateway(policy: Path, *server: str, env: dict | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "runestone", "mcp", "wrap", "--policy", str(policy), "--", *server],
        env={**os.environ, **(env or {})})


async def session_run(params: StdioServerParameters, body, elicitation=None):
    async with stdio_client(params) as streams, ClientSession(
            streams[0], streams[1], elicitation_callback=elicitation) as session:
        await session.initialize()
        return await body(session)


def git_state(repo: Path) -> tuple[str, str]:
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"],
                            capture_output=True, text=True, check=True).stdout
    return head, status


def test_listing_allowed_and_denied_calls_through_the_gateway(policy, repo):
    before = git_state(repo)

    async def body(session):
        tools = [t.name for t in (await session.list_tools()).tools]
        status = await session.call_tool("git_status", {"repo_path": str(repo)})
        added = await session.call_tool("git_add", {"repo_path": str(repo),
                                                    "files": ["b.txt"]})
        return tools, status, added

    tools, status, added = anyio.run(session_run, gateway(
        policy, "mcp-server-git", "--repository", str(repo)), body)
    assert {"git_status", "git_add", "git_commit"} <= set(tools)
    assert not status.is_error and "b.txt" in status.content[0].text
    assert added.is_error and "may not change the repository" in added.content[0].text
    assert git_state(repo) == before  # the denied call never reached the server

    entries = list(read_entries(layout().audit_dir))
    decisions = {(e["tool"], e["decision"]) for e in entries if e["kind"] == "decision"}
    assert ("mcp__mcp-git__git_status", "allow") in decisions
    assert ("mcp__mcp-git__git_add", "deny") in decisions
    allowed = next(e for e in entries if e["kind"] == "decision"
                   and e["tool"] == "mcp__mcp-git__git_status")
    result = next(e for e in entries if e["kind"] == "result")
    assert result["request_id"] == allowed["request_id"] and result["is_error"] is False
    assert result["result_bytes"] > 0 and "b.txt" not in json.dumps(result)


def test_results_are_written_while_the_session_is_open(policy):
    """Result entries are written after each answer, while the session is open (not only
    when the gateway exits), each after its own call's request and decision, in one chain."""
    def entries() -> list[dict]:
        return [e for e in read_entries(layout().audit_dir) if e["kind"] != "checkpoint"]

    async def body(session):
        calls = [await session.call_tool("get_current_time", {"timezone": "UTC"})
                 for _ in range(2)]
        with anyio.fail_after(20):
            while sum(e["kind"] == "result" for e in entries()) < 2:
                await anyio.sleep(0.02)
        return calls

    calls = anyio.run(session_run, gateway(policy, "mcp-server-time"), body)
    assert not any(call.is_error for call in calls)
    written = entries()
    for request in (e for e in written if e["kind"] == "request"):
        mine = [e["kind"] for e in written if e["request_id"] == request["request_id"]]
        assert mine == ["request", "decision", "result"]
    every = list(read_entries(layout().audit_dir))
    assert [e["seq"] for e in every] == list(range(1, len(every) + 1))


def test_an_ask_answered_through_elicitation(policy):
    asked: list[str] = []

    async def approve(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    async def decline(context, params):
        return types.ElicitResult(action="decline")

    async def body(session):
        return await session.call_tool("convert_time", {
            "source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"})

    approved = anyio.run(session_run, gateway(policy, "mcp-server-time"), body, approve)
    assert not approved.is_error and "Asia/Tokyo" in approved.content[0].text
    assert asked and "convert_time" in asked[0]
    declined = anyio.run(session_run, gateway(policy, "mcp-server-time"), body, decline)
    assert declined.is_error and "Declined" in declined.content[0].text

    entries = list(read_entries(layout().audit_dir))
    approval = next(e for e in entries if e["kind"] == "approval" and e["decision"] == "approved")
    first = approval["request_id"]
    trail = [e["kind"] for e in entries if e.get("request_id") == first
             or (e.get("approval") or {}).get("request") == first]
    assert trail[:3] == ["request", "decision", "approval"] and trail[-1] == "decision"
    allowed = next(e for e in entries if e["kind"] == "decision"
                   and (e.get("approval") or {}).get("request") == first)
    assert allowed["decision"] == "allow"
    assert any(e["kind"] == "result" and e["request_id"] == allowed["request_id"]
               for e in entries)
    assert "(elicitation)" in approval["approver"]


def test_an_ask_without_elicitation_defers_with_a_link(policy):
    async def body(session):
        return await session.call_tool("convert_time", {
            "source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"})

    result = anyio.run(session_run, gateway(policy, "mcp-server-time"), body)
    assert result.is_error and "/approve/" in result.content[0].text


def test_a_crashing_server_gives_an_error_not_a_hang(policy):
    async def body(session):
        with anyio.fail_after(20):
            try:
                return await session.call_tool("boom", {})
            except Exception as exc:  # the SDK raises on a JSON-RPC error
                return exc

    outcome = anyio.run(session_run, gateway(policy, sys.executable, str(HERE / "fake_server.py"),
                                             env={"FAKE_MODE": "crash"}), body)
    text = str(outcome) if isinstance(outcome, Exception) else outcome.content[0].text
    assert "exited" in text


def test_malformed_messages_from_either_side(policy):
    process = subprocess.Popen(
        [sys.executable, "-m", "runestone", "mcp", "wrap", "--policy", str(policy), "--",
         sys.executable, str(HERE / "fake_server.py")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FAKE_MODE": "garbage"})
    try:
        process.stdin.write("{this is not json\n")
        process.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                        "params": {"protocolVersion": "2025-06-18",
                                                   "capabilities": {},
                                                   "clientInfo": {"name": "t",
                                                                  "version": "1"}}}) + "\n")
        process.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                        "params": {"name": "boom", "arguments": {}}}) + "\n")
        process.stdin.flush()
        first = json.loads(process.stdout.readline())
        assert first["error"]["code"] == -32700
        second = json.loads(process.stdout.readline())
        assert second["id"] == 1 and second["result"]["serverInfo"]["name"] == "fake"
        third = json.loads(process.stdout.readline())
        assert third["id"] == 2 and third["result"]["content"][0]["text"] == "ok"
    finally:
        process.stdin.close()
        deadline = time.time() + 10
        while process.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        process.kill()
    assert "malformed message from the server" in process.stderr.read()


def test_install_routes_mcp_servers_through_the_gateway_and_back(tmp_path, policy):
    from clihelp import run_cli

    config = tmp_path / ".mcp.json"
    original = {"mcpServers": {
        "time": {"command": "mcp-server-time", "args": [], "env": {"TZ": "UTC"}},
        "git": {"command": "mcp-server-git", "args": ["--repository", str(tmp_path)]},
        "remote": {"type": "http", "url": "https://mcp.example.com/mcp"},
        "secret": {"type": "http", "url": "https://x.example/mcp",
                   "headers": {"Authorization": "Bearer abc"}}}}
    config.write_text(json.dumps(original))
    assert run_cli("install", "mcp", "--settings", str(config)).returncode == 0
    wrapped = json.loads(config.read_text())["mcpServers"]
    assert wrapped["time"]["args"][:5] == ["-P", "-m", "runestone", "mcp", "wrap"]
    assert wrapped["time"]["env"] == {"TZ": "UTC"}
    assert wrapped["secret"] == original["mcpServers"]["secret"]
    doctor = run_cli("doctor", "mcp", "--settings", str(config))
    assert doctor.returncode == 1 and "secret does not go through" in doctor.stdout

    async def body(session):
        return await session.call_tool("get_current_time", {"timezone": "UTC"})

    entry = wrapped["time"]
    after_wrap = entry["args"].index("wrap") + 1  # the test's policy goes to `mcp wrap`
    result = anyio.run(session_run, StdioServerParameters(
        command=entry["command"],
        args=[*entry["args"][:after_wrap], "--policy", str(policy),
              *entry["args"][after_wrap:]],
        env={**os.environ, **entry["env"]}), body)
    assert not result.is_error
    assert run_cli("uninstall", "mcp", "--settings", str(config)).returncode == 0
    assert json.loads(config.read_text()) == original


def test_the_gateway_in_front_of_a_streamable_http_server(policy, tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(HERE / "http_server.py"), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        rules = policy.read_text() + (
            '\n[[rule]]\nid = "t.notes-add"\ndecision = "allow"\nreason = "notes"\n'
            'mcp_server = ["notes"]\nmcp_tool = ["add_note"]\n\n'
            '[[rule]]\nid = "t.notes-delete"\ndecision = "deny"\nreason = "keep the notes"\n'
            'mcp_server = ["notes"]\nmcp_tool = ["delete_notes"]\n')
        policy.write_text(rules)
        params = StdioServerParameters(command=sys.executable, env=dict(os.environ), args=[
            "-m", "runestone", "mcp", "wrap", "--policy", str(policy), "--name", "notes",
            "--url", f"http://127.0.0.1:{port}/mcp"])

        async def body(session):
            tools = [t.name for t in (await session.list_tools()).tools]
            added = await session.call_tool("add_note", {"text": "remember"})
            deleted = await session.call_tool("delete_notes", {})
            again = await session.call_tool("add_note", {"text": "twice"})
            return tools, added, deleted, again

        tools, added, deleted, again = anyio.run(session_run, params, body)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert set(tools) == {"add_note", "delete_notes"}
    assert not added.is_error and "1 notes" in added.content[0].text
    assert deleted.is_error and "keep the notes" in deleted.content[0].text
    assert "2 notes" in again.content[0].text  # the denied delete never reached the server
