"""A deliberately broken MCP server for the gateway's failure tests (not a stand-in for a
real server: the real ones are mcp-server-git and mcp-server-time).

MODE=garbage: writes a non-JSON line before every answer.
MODE=crash:   exits as soon as a tools/call arrives.
"""

import json
import os
import sys

MODE = os.environ.get("FAKE_MODE", "crash")


def send(message: dict) -> None:
    if MODE == "garbage":
        sys.stdout.write("this is not json\n")
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    message = json.loads(line)
    method, message_id = message.get("method"), message.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": message_id, "result": {
            "protocolVersion": message["params"]["protocolVersion"],
            "capabilities": {"tools": {}}, "serverInfo": {"name": "fake", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": message_id, "result": {"tools": [
            {"name": "boom", "inputSchema": {"type": "object"}}]}})
    elif method == "tools/call":
        if MODE == "crash":
            sys.exit(3)
        send({"jsonrpc": "2.0", "id": message_id, "result": {
            "content": [{"type": "text", "text": "ok"}], "isError": False}})
    elif message_id is not None:
        send({"jsonrpc": "2.0", "id": message_id, "result": {}})
