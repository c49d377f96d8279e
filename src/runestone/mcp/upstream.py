"""The server side of the gateway: a child process over stdio, or a streamable-HTTP server.

Both hand over raw JSON-RPC messages as dicts, so the gateway relays what it does not
understand untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from runestone.mcp.wire import MAX_LINE, Oversized, encode_line, read_line

__all__ = ["MAX_LINE", "HttpUpstream", "StdioUpstream", "Upstream"]


class Upstream(Protocol):
    name_hint: str

    async def start(self) -> None: ...

    async def send(self, message: dict[str, Any]) -> None: ...

    async def receive(self) -> dict[str, Any] | str | Oversized | None:
        """A message, a str describing a malformed one, an Oversized line, or None when
        the server is gone."""
        ...

    async def close(self) -> None: ...


class StdioUpstream:
    """The real server as a child process; its stderr goes to ours."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.name_hint = self.argv[0].rsplit("/", 1)[-1] if self.argv else "server"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=None, limit=MAX_LINE)

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(encode_line(message))
        await self.process.stdin.drain()

    async def receive(self) -> dict[str, Any] | str | Oversized | None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await read_line(self.process.stdout)
            if line is None or isinstance(line, Oversized):
                return line
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError as exc:
                return f"not JSON ({exc.msg})"
            return message if isinstance(message, dict) else "not a JSON-RPC object"

    async def close(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 2)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


class HttpUpstream:
    """A streamable-HTTP MCP server, through the `mcp` SDK's client transport."""

    def __init__(self, url: str) -> None:
        self.url = url
        from urllib.parse import urlsplit

        self.name_hint = urlsplit(url).hostname or "remote"
        self._incoming: asyncio.Queue[dict[str, Any] | str | None] = asyncio.Queue()
        self._outgoing: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await self._ready.wait()

    async def _run(self) -> None:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared.message import SessionMessage
        from mcp_types import JSONRPCMessage
        from pydantic import TypeAdapter

        adapter: TypeAdapter[Any] = TypeAdapter(JSONRPCMessage)
        try:
            async with streamable_http_client(self.url) as streams:
                read, write = streams[0], streams[1]
                self._ready.set()

                async def outgoing() -> None:
                    while (message := await self._outgoing.get()) is not None:
                        await write.send(SessionMessage(adapter.validate_python(message)))

                sender = asyncio.create_task(outgoing())
                try:
                    async for item in read:
                        if isinstance(item, Exception):
                            await self._incoming.put(f"transport error: {item}")
                            continue
                        await self._incoming.put(item.message.model_dump(
                            by_alias=True, exclude_none=True, mode="json"))
                finally:
                    sender.cancel()
        except Exception as exc:
            print(f"runestone mcp: the HTTP server failed: {exc}", file=sys.stderr)
        finally:
            self._ready.set()
            await self._incoming.put(None)

    async def send(self, message: dict[str, Any]) -> None:
        await self._outgoing.put(message)

    async def receive(self) -> dict[str, Any] | str | None:
        return await self._incoming.get()

    async def close(self) -> None:
        await self._outgoing.put(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
