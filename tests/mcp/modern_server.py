"""A stdio MCP server built with the official Python SDK, which speaks the 2026-07-28
per-request protocol (server/discover, `_meta` envelopes, `resultType`). Each tool leaves a
file behind in the folder given as argv[1], so a test can see whether it ran."""

import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

SPOOL = Path(sys.argv[1])
server = MCPServer("notes-2026")


@server.tool()
def add_note(text: str) -> str:
    (SPOOL / "added").write_text(text)
    return f"added {text}"


@server.tool()
def delete_notes() -> str:
    (SPOOL / "deleted").write_text("yes")
    return "deleted"


@server.tool()
def publish_notes(channel: str) -> str:
    (SPOOL / "published").write_text(channel)
    return f"published to {channel}"


server.run()
