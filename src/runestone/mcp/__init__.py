"""The MCP gateway: every `tools/call` between an MCP client and server decided, approved and
audited. Only this package imports the `mcp` SDK, and only for what needs it (HTTP upstreams
and `runestone mcp serve`); the stdio relay is plain JSON-RPC on the standard library."""
