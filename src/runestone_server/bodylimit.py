"""Every request body is bounded before anything parses it, authenticated or not.

Why at the edge (an ASGI middleware) and not per endpoint: FastAPI reads and parses a JSON
body before a handler, or even its authentication dependency, runs; an unauthenticated
100 MB body to /api/v1/login was held and parsed whole. Here a declared Content-Length over
the route's limit is answered 413 before a byte of the body is read, and a body sent
without one (chunked) is read here up to the limit and refused past it, whether or not the
route would have read it; what the app reads is counted again as a backstop.

Limits are by path, the largest legitimate body of each kind with room to spare: audit
batches (the shipper's 2 MiB batches; one larger entry alone), policy texts (at most a
million characters, JSON-escaped), dashboard forms (forms.MAX_FORM), sign-in and
enrolment (a few fields, before any credential is checked), and everything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from runestone.whole_numbers import whole_number

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KiB, MiB = 1024, 1024 * 1024
UNAUTHENTICATED = 16 * KiB
AUDIT = 16 * MiB  # audit.api.MAX_BODY
POLICY = 8 * MiB  # 1,000,000 characters, each at most 6 bytes as a JSON escape
FORM = 2_000_000  # web.forms.MAX_FORM: a policy text posted from the dashboard
API = 1 * MiB

# (pattern over the path, limit): the first that matches applies.
LIMITS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^/api/v1/(login|enroll)/?$"), UNAUTHENTICATED),
    (re.compile(r"^/login/?$"), UNAUTHENTICATED),
    (re.compile(r"^/api/v1/runtime/audit(/.*)?$"), AUDIT),
    (re.compile(r"^/api/v1/teams/[^/]+/(policies|simulations)/?$"), POLICY),
    (re.compile(r"^/api/"), API),
    (re.compile(r"^/"), FORM),
)


def limit_for(path: str) -> int:
    """The most bytes a request body to `path` may have."""
    for pattern, limit in LIMITS:
        if pattern.match(path):
            return limit
    return API


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a body over its path's limit, before it is parsed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope.get("path", "/"))
        declared = _header(scope, b"content-length")
        if declared is not None:
            length = whole_number(declared, 0, 2**63 - 1)
            if length is None:
                await refuse(send, 400, "Content-Length is not a whole number of bytes")
                return
            if length > limit:
                await refuse(send, 413, _too_large(limit))
                return
        elif _header(scope, b"transfer-encoding") is not None:
            # Chunked: the size is known only by reading. Read up to the limit here, so a
            # route that would not read its body is refused alike, then hand it on whole.
            whole = await _read_at_most(receive, limit)
            if whole is None:
                await refuse(send, 413, _too_large(limit))
                return
            receive = _replay(whole, receive)
        state = {"received": 0, "over": False, "started": False}

        async def bounded_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:
                return  # whatever the app made of the cut-off body, the answer is 413
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await refuse(send, 413, _too_large(limit))


async def _read_at_most(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it is over `limit` bytes (the rest is never read)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the app will see an empty body and a disconnect
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` whole first, then whatever the connection says next
    (a disconnect, for long-polls that watch for one)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _too_large(limit: int) -> str:
    return f"the request body is larger than this endpoint takes ({limit} bytes)"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def document_body_limits(app: Any) -> None:
    """Every operation that takes a body says, in the OpenAPI schema, that over its limit
    it answers 413, and what the limit is (clients and schemathesis read it there)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if isinstance(operation, dict) and "requestBody" in operation:
                    operation.setdefault("responses", {}).setdefault("413", {
                        "description": f"the body is over this endpoint's limit "
                                       f"({limit_for(path)} bytes); nothing was read past it"})
        return schema

    app.openapi = openapi
