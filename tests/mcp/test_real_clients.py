"""The gateway between real MCP clients and real MCP servers, with "did the tool run" as the
oracle: the official Python SDK's `Client` (2026-07-28 per-request protocol, and the
handshake era it falls back to), the MCP Inspector CLI, and server-filesystem,
server-everything and an SDK-built 2026-07-28 server. Raw JSON-RPC drives the cases no
well-behaved client sends (no id, cancellation mid-approval, a server that dies)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from parts import HERE, npm_bin, wrap

from mcp import Client, StdioServerParameters
from runestone.audit.query import read_entries
from runestone.home import layout
from runestone.identity import create_identity

POLICY = """
[policy]
default = "ask"
include = ["default"]

[[rule]]
id = "t.notes-add"
decision = "allow"
reason = "adding notes"
mcp_server = ["notes-2026"]
mcp_tool = ["add_note"]

[[rule]]
id = "t.notes-delete"
decision = "deny"
reason = "keep the notes"
mcp_server = ["notes-2026"]
mcp_tool = ["delete_notes"]

[[rule]]
id = "t.fs-read"
decision = "allow"
reason = "reading the test folder"
mcp_server = ["secure-filesystem-server"]
mcp_tool = ["read_text_file", "list_directory", "list_allowed_directories"]

[[rule]]
id = "t.fs-move"
decision = "deny"
reason = "files stay where they are"
mcp_server = ["secure-filesystem-server"]
mcp_tool = ["move_file"]

[[rule]]
id = "t.everything-echo"
decision = "allow"
reason = "echo is harmless"
mcp_server = ["everything"]
mcp_tool = ["echo"]
"""


@pytest.fixture
def policy(isolated_home, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    (tmp_path / "user-home").mkdir()
    create_identity(layout())
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    return folder.resolve()


def results() -> list[dict]:
    return [e for e in read_entries(layout().audit_dir) if e["kind"] == "result"]


def params(argv: list[str]) -> StdioServerParameters:
    return StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))


def approve_with(answer: bool):
    async def callback(context, request):
        return types.ElicitResult(action="accept", content={"approve": answer})
    return callback


# --- the SDK's Client at 2026-07-28 --------------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "2026-07-28"])
def test_sdk_client_at_2026_07_28(policy, tmp_path, mode):
    """resultType on the gateway's own results, per-request capabilities, no stall without
    --name (a pinned client never probes: the gateway asks the server's name itself)."""
    spool = tmp_path / "spool"
    spool.mkdir()
    argv = wrap(policy, sys.executable, str(HERE / "modern_server.py"), str(spool))

    async def session(answer: bool, calls):
        async with Client(params(argv), mode=mode, elicitation_callback=approve_with(answer),
                          read_timeout_seconds=60) as client:
            assert client.protocol_version == "2026-07-28"
            return [await calls(client)]

    async def first_and_deny(client):
        start = time.monotonic()
        added = await client.call_tool("add_note", {"text": "hello"})
        elapsed = time.monotonic() - start
        deleted = await client.call_tool("delete_notes", {})
        return added, elapsed, deleted

    [(added, elapsed, deleted)] = anyio.run(session, True, first_and_deny)
    assert not added.is_error and (spool / "added").read_text() == "hello"  # allow: it ran
    # It stalled 30 s waiting for an initialize that a 2026-07-28 client never sends; the
    # first call also pays for the server's start, which a loaded CI machine slows.
    assert elapsed < 20, f"the first call took {elapsed:.1f} s"
    assert deleted.is_error and "keep the notes" in deleted.content[0].text  # deny: reason
    assert not (spool / "deleted").exists()                                  # ... not run

    async def publish(client):
        return await client.call_tool("publish_notes", {"channel": "team"})

    [declined] = anyio.run(session, False, publish)
    assert declined.is_error and "Declined" in declined.content[0].text
    assert not (spool / "published").exists()  # ask, declined in the client: not run
    [approved] = anyio.run(session, True, publish)
    assert not approved.is_error and (spool / "published").read_text() == "team"

    entries = list(read_entries(layout().audit_dir))
    assert any(e["kind"] == "approval" and e.get("decision") == "approved" for e in entries)
    assert {e["tool"] for e in results()} == {"mcp__notes-2026__add_note",
                                              "mcp__notes-2026__publish_notes"}


def test_a_retry_that_changes_the_call_is_not_approved(policy, tmp_path):
    """The input_required state is bound to the call it asked about."""
    spool = tmp_path / "spool"
    spool.mkdir()
    gateway = RawClient(wrap(policy, sys.executable, str(HERE / "modern_server.py"),
                             str(spool)))
    try:
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
        gateway.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "publish_notes", "arguments": {"channel": "team"}, "_meta": meta}})
        asked = gateway.answer(1)["result"]
        assert asked["resultType"] == "input_required"
        gateway.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "publish_notes", "arguments": {"channel": "everyone"}, "_meta": meta,
            "requestState": asked["requestState"],
            "inputResponses": {"runestone-approval": {"action": "accept",
                                                      "content": {"approve": True}}}}})
        refused = gateway.answer(2)["result"]
        assert refused["isError"] and "differs" in refused["content"][0]["text"]
        assert refused["resultType"] == "complete"
        assert not (spool / "published").exists()
    finally:
        gateway.close()


# --- the SDK's Client in front of the reference servers (handshake era) --------------------

def test_sdk_client_with_server_filesystem(policy, root):
    argv = wrap(policy, npm_bin("mcp-server-filesystem"), str(root))

    async def body(answer: bool):
        async with Client(params(argv), elicitation_callback=approve_with(answer),
                          read_timeout_seconds=60) as client:
            read = await client.call_tool("read_text_file", {"path": str(root / "a.txt")})
            moved = await client.call_tool("move_file", {
                "source": str(root / "a.txt"), "destination": str(root / "b.txt")})
            written = await client.call_tool("write_file", {
                "path": str(root / f"new-{answer}.txt"), "content": "x"})
            return read, moved, written

    read, moved, declined = anyio.run(body, False)
    assert not read.is_error and "alpha" in read.content[0].text         # allow
    assert moved.is_error and "stay where they are" in moved.content[0].text  # deny
    assert (root / "a.txt").exists() and not (root / "b.txt").exists()
    assert declined.is_error and not (root / "new-False.txt").exists()  # ask, declined
    _, _, approved = anyio.run(body, True)
    assert not approved.is_error and (root / "new-True.txt").read_text() == "x"


# --- the MCP Inspector CLI -----------------------------------------------------------------

def inspector(policy: Path, *server: str, tool: str, args: dict[str, str],
              name: str | None = None) -> subprocess.CompletedProcess[str]:
    pairs = [f"{k}={v}" for k, v in args.items()]
    # The Inspector hands a stdio server only a few variables of its own: pass ours on.
    env = [f"{k}={os.environ[k]}" for k in ("RUNESTONE_HOME", "HOME", "PYTHONPATH")
           if k in os.environ]
    return subprocess.run(
        [npm_bin("mcp-inspector"), "--cli", *[x for e in env for x in ("-e", e)],
         "--method", "tools/call", "--tool-name", tool, "--tool-arg", *pairs,
         "--", *wrap(policy, *server, name=name)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "MCP_CATALOG_PATH": str(policy.parent / "catalog.json")})


def test_inspector_cli_with_server_filesystem(policy, root):
    fs = npm_bin("mcp-server-filesystem")
    read = inspector(policy, fs, str(root), tool="read_text_file",
                     args={"path": str(root / "a.txt")})
    assert "alpha" in read.stdout, read.stderr
    moved = inspector(policy, fs, str(root), tool="move_file",
                      args={"source": str(root / "a.txt"), "destination": str(root / "b.txt")})
    assert "stay where they are" in moved.stdout + moved.stderr
    assert (root / "a.txt").exists() and not (root / "b.txt").exists()
    asked = inspector(policy, fs, str(root), tool="write_file",
                      args={"path": str(root / "new.txt"), "content": "x"})
    assert "/approve/" in asked.stdout + asked.stderr  # no elicitation: deferred, a link
    assert not (root / "new.txt").exists()
    broken = policy.parent / "broken.toml"
    broken.write_text("[policy]\ndefault = 'maybe'\n")  # malformed policy: nothing passes
    refused = inspector(broken, fs, str(root), tool="read_text_file",
                        args={"path": str(root / "a.txt")})
    assert "alpha" not in refused.stdout and "cannot be loaded" in refused.stdout + refused.stderr


def test_inspector_cli_with_server_everything(policy):
    everything = npm_bin("mcp-server-everything")
    echoed = inspector(policy, everything, tool="echo", args={"message": "hi there"},
                       name="everything")
    assert "hi there" in echoed.stdout, echoed.stderr
    summed = inspector(policy, everything, tool="get-sum", args={"a": "1", "b": "2"},
                       name="everything")
    assert "/approve/" in summed.stdout + summed.stderr and "The sum" not in summed.stdout


# --- raw JSON-RPC: what careful clients never send ----------------------------------------

class RawClient:
    """The gateway as a child process, spoken to line by line."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        self.lines: queue.Queue[dict] = queue.Queue()
        self.held: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def send(self, message: dict) -> None:
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def next(self, test, timeout: float = 60) -> dict:
        for i, message in enumerate(self.held):
            if test(message):
                return self.held.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            message = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if test(message):
                return message
            self.held.append(message)

    def answer(self, message_id, timeout: float = 60) -> dict:
        return self.next(lambda m: m.get("id") == message_id and "method" not in m, timeout)

    def initialize(self, capabilities: dict | None = None) -> None:
        self.send({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": capabilities or {},
            "clientInfo": {"name": "raw", "version": "1"}}})
        self.answer("init")
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def server_pid(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return int(children.read_text().split()[0])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def call(message_id, name: str, arguments: dict, **extra) -> dict:
    message = {"jsonrpc": "2.0", "method": "tools/call",
               "params": {"name": name, "arguments": arguments}, **extra}
    if message_id is not ...:
        message["id"] = message_id
    return message


def test_a_tools_call_without_a_usable_id_never_passes(policy, root):
    gateway = RawClient(wrap(policy, npm_bin("mcp-server-filesystem"), str(root)))
    try:
        gateway.initialize()
        move = {"source": str(root / "a.txt"), "destination": str(root / "b.txt")}
        gateway.send(call(..., "move_file", move))        # no id: a notification
        gateway.send(call(None, "move_file", move))       # id: null
        refused = gateway.answer(None)
        assert refused["error"]["code"] == -32600
        gateway.send(call([1], "move_file", move))        # an id no table can hold
        assert gateway.answer(None)["error"]["code"] == -32600
        gateway.send(call(7, "list_allowed_directories", {}))  # the gateway still serves
        assert str(root) in gateway.answer(7)["result"]["content"][0]["text"]
        assert (root / "a.txt").exists() and not (root / "b.txt").exists()  # never ran
    finally:
        gateway.close()


def test_a_call_cancelled_while_its_approval_is_pending_never_runs(policy, root):
    gateway = RawClient(wrap(policy, npm_bin("mcp-server-filesystem"), str(root)))
    try:
        gateway.initialize({"elicitation": {}})
        gateway.send(call(5, "write_file", {"path": str(root / "late.txt"), "content": "x"}))
        asked = gateway.next(lambda m: m.get("method") == "elicitation/create")
        gateway.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": 5, "reason": "the user pressed stop"}})
        withdrawn = gateway.next(lambda m: m.get("method") == "notifications/cancelled")
        assert withdrawn["params"]["requestId"] == asked["id"]
        # An approval that arrives after the cancel changes nothing.
        gateway.send({"jsonrpc": "2.0", "id": asked["id"],
                      "result": {"action": "accept", "content": {"approve": True}}})
        gateway.send(call(6, "list_allowed_directories", {}))
        gateway.answer(6)
        with pytest.raises(queue.Empty):
            gateway.answer(5, timeout=1)  # a cancelled request is not answered
    finally:
        gateway.close()
    assert not (root / "late.txt").exists()
    [entry] = [e for e in results() if e["tool"].endswith("__write_file")]
    assert entry["cancelled"] is True and entry["ran"] is False and entry["request_id"]


def test_a_server_that_dies_while_a_call_waits_for_approval(policy, root):
    gateway = RawClient(wrap(policy, npm_bin("mcp-server-filesystem"), str(root)))
    try:
        gateway.initialize({"elicitation": {}})
        gateway.send(call(5, "write_file", {"path": str(root / "x.txt"), "content": "x"}))
        gateway.next(lambda m: m.get("method") == "elicitation/create")
        os.kill(gateway.server_pid(), signal.SIGKILL)
        answer = gateway.answer(5, timeout=20)
        assert answer["error"]["code"] == -32000 and "exited" in answer["error"]["message"]
    finally:
        gateway.close()
    assert not (root / "x.txt").exists()


def test_a_result_over_the_line_limit_is_an_error_not_a_hang(policy, root):
    (root / "big.txt").write_bytes(b"y" * (65 * 1024 * 1024))
    gateway = RawClient(wrap(policy, npm_bin("mcp-server-filesystem"), str(root)))
    try:
        gateway.initialize()
        gateway.send(call(3, "read_text_file", {"path": str(root / "big.txt")}))
        answer = gateway.answer(3, timeout=120)["result"]
        assert answer["isError"] and "limit" in answer["content"][0]["text"]
        gateway.send(call(4, "read_text_file", {"path": str(root / "a.txt")}))
        assert "alpha" in gateway.answer(4)["result"]["content"][0]["text"]
    finally:
        gateway.close()
    big = [e for e in results() if e.get("delivered") is False]
    assert big and big[0]["result_bytes"] > 64 * 1024 * 1024


def test_paths_in_mcp_arguments_are_judged_like_write(policy, tmp_path):
    """server-filesystem's write_file to ~/.ssh/authorized_keys is denied as Write is, even
    with a client that would approve any ask; inside the project it still runs."""
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir()
    (home / "project").mkdir()
    argv = wrap(policy, npm_bin("mcp-server-filesystem"), str(home))

    async def body():
        async with Client(params(argv), elicitation_callback=approve_with(True),
                          read_timeout_seconds=60) as client:
            key = await client.call_tool("write_file", {
                "path": "~/.ssh/authorized_keys", "content": "ssh-ed25519 AAAA attacker"})
            rc = await client.call_tool("edit_file", {
                "path": str(home / ".bashrc"), "edits": [{"oldText": "", "newText": "x"}]})
            note = await client.call_tool("write_file", {
                "path": str(home / "project" / "note.txt"), "content": "fine"})
            return key, rc, note

    key, rc, note = anyio.run(body)
    assert key.is_error and "persist" in key.content[0].text
    assert not (home / ".ssh" / "authorized_keys").exists()
    assert rc.is_error and "persist" in rc.content[0].text
    assert not note.is_error and (home / "project" / "note.txt").read_text() == "fine"
