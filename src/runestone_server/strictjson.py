"""JSON bodies are read strictly before an endpoint sees them: a clear 400, never a 500.

Why: Python's json reads NaN and Infinity (not JSON; PostgreSQL's JSON refuses them and the
answer we send back is no longer JSON), reads a lone surrogate escape (`"\\ud800"`) into a
string that cannot be encoded again (the approval was stored, then every read of it was a
500), and 100,000 nested brackets end in a RecursionError. Each was a 500 somewhere after
the body was accepted. Here such a body is refused where it arrives, saying what is wrong.

Nesting is limited to MAX_DEPTH: nothing the API takes is nearly that deep, and the pages
that show a value render it recursively. Audit batches are not read here: the ingest reads
its own body (entries are hashed as the runtime wrote them; a surrogate there is a bad hash,
found by verification) and refuses deep nesting itself.
"""

from __future__ import annotations

import json
from typing import Any

from runestone_server.bodylimit import ASGIApp, Message, Receive, Scope, Send, refuse

MAX_DEPTH = 64
SKIPPED_PATHS = ("/api/v1/runtime/audit",)


class Malformed(ValueError):
    """The body is not JSON this server takes; the message says why."""


def _constant(name: str) -> Any:
    raise Malformed(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise Malformed(f"the number {text[:40]} is too large")
    return value


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parsed JSON, or Malformed: not JSON, NaN/Infinity or a number too large, a lone
    surrogate in a string or key, or nesting deeper than `max_depth`."""
    try:
        value = json.loads(data, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise Malformed(f"the JSON is nested more than {max_depth} levels deep") from None
    except Malformed:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"the body is not valid JSON: {exc}") from None
    _check(value, max_depth)
    return value


def _check(value: Any, max_depth: int) -> None:
    """Depth and text, walked without recursion (the value may be as deep as json allows)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _text(item)
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise Malformed(f"the JSON is nested more than {max_depth} levels deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    _text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Malformed("a string holds a lone surrogate (such as \\ud800), which is not "
                        "text; escape the bytes some other way") from None


def _is_json(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-type":
            kind = value.decode("latin-1").split(";")[0].strip().lower()
            return kind == "application/json" or kind.endswith("+json")
    return True  # FastAPI reads a body without a Content-Type as JSON


class StrictJSON:
    """ASGI middleware (inside BodyLimit, so the body is bounded): reads an API request's
    JSON body, refuses it with 400 when `loads` does, and hands the same bytes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH",
                                                                  "DELETE") \
                or not path.startswith("/api/") or path.startswith(SKIPPED_PATHS) \
                or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip():
            try:
                loads(body)
            except Malformed as exc:
                await refuse(send, 400, str(exc))
                return
        given = False

        async def replay() -> Message:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
