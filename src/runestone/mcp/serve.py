"""`runestone mcp serve`: the runtime's own governed tools as an MCP server (stdio).

`shell.exec`, `files.write` and `http.request` (MCP tool names `shell_exec`, `files_write`,
`http_request`), each decided by policy, held to the `[tools.*]` limits and audited, exactly
as through the daemon. A refusal is a tool error with the reason, so the model can read it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def serve(args: argparse.Namespace) -> int:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from runestone.gatekeeper import Gatekeeper
    from runestone.home import layout
    from runestone.tools.runner import run_tool
    from runestone.tools.settings import ToolSettings

    where = layout()
    try:
        keeper = Gatekeeper.from_layout(where, policy_file=args.policy, preset=args.preset,
                                        approval_mode="defer")
        settings = ToolSettings.load(where.config_file)
    except Exception as exc:
        print(f"runestone mcp serve: cannot start: {exc}", file=sys.stderr)
        return 2
    server = MCPServer("runestone")

    def call(name: str, params: dict[str, Any]) -> str:
        response = run_tool(keeper, settings, name, params, agent="mcp:serve",
                            cwd=params.pop("cwd", None) or os.getcwd())
        if response.decision not in ("allow", "sandbox"):  # sandbox: it ran contained
            # ToolError's text reaches the model; any other exception is hidden as a crash.
            raise ToolError(f"Runestone {response.decision}: "
                            f"{response.error or response.reason}")
        return json.dumps({"request_id": response.request_id, **(response.result or {}),
                           **({"replayed": True} if response.replayed else {})},
                          ensure_ascii=False)

    def keyed(params: dict[str, Any], key: str) -> dict[str, Any]:
        return {**params, "idempotency_key": key} if key else params

    @server.tool(name="shell_exec", description="Run a shell command, governed by Runestone. "
                 "A retry with the same idempotency_key returns the first result.")
    def shell_exec(command: str, cwd: str = "", idempotency_key: str = "") -> str:
        return call("shell.exec", keyed({"command": command, "cwd": cwd or os.getcwd()},
                                        idempotency_key))

    @server.tool(name="files_write", description="Write a text file, governed by Runestone. "
                 "A retry with the same idempotency_key returns the first result.")
    def files_write(path: str, content: str, cwd: str = "", idempotency_key: str = "") -> str:
        return call("files.write", keyed({"path": path, "content": content, "cwd": cwd},
                                         idempotency_key))

    @server.tool(name="http_request", description="Fetch a URL, governed by Runestone. "
                 "A retry with the same idempotency_key returns the first result.")
    def http_request(url: str, method: str = "GET", body: str | None = None,
                     idempotency_key: str = "") -> str:
        params: dict[str, Any] = {"url": url, "method": method}
        if body is not None:
            params["body"] = body
        return call("http.request", keyed(params, idempotency_key))

    server.run()
    return 0
