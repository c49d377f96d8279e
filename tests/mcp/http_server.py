"""A streamable-HTTP MCP server built with the official SDK, for the gateway's `--url` test."""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("http-notes")
notes: list[str] = []


@server.tool()
def add_note(text: str) -> str:
    notes.append(text)
    return f"{len(notes)} notes"


@server.tool()
def delete_notes() -> str:
    notes.clear()
    return "deleted"


server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
