"""JSON-RPC as the gateway writes and reads it: replies shaped for the client's protocol era,
request ids, the per-request `_meta` envelope of 2026-07-28, and lines over the size limit.

Plain standard library: the stdio relay must not import the MCP SDK.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, NamedTuple

MAX_LINE = 64 * 1024 * 1024
PARSE_ERROR, INVALID_REQUEST, INTERNAL_ERROR, SERVER_GONE = -32700, -32600, -32603, -32000

# The stateless per-request protocol (2026-07-28): every request carries its protocol
# version, client info and capabilities in `_meta`, and every result must say `resultType`.
MODERN_VERSIONS = frozenset({"2026-07-28"})
PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"


# One encoder for every message (`json.dumps` with options builds a new one each time).
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def encode_line(message: dict[str, Any]) -> bytes:
    """A message as one line of the stdio transport.

    Messages are written from what the gateway parsed, never relayed as the bytes that came
    in: the other side then reads exactly what the gateway read and judged. A line relayed
    raw could say more than that to another parser (with a key twice, `"method"` or
    `"name"`, the gateway sees the last and a server's parser may act on the first, and a
    judged call would not be the one that runs); the few microseconds saved are not worth
    that."""
    return _ENCODER.encode(message).encode() + b"\n"


def meta_of(message: dict[str, Any]) -> dict[str, Any]:
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta if isinstance(meta, dict) else {}


def is_modern(message: dict[str, Any]) -> bool:
    """Whether a request speaks the 2026-07-28 per-request protocol."""
    return meta_of(message).get(PROTOCOL_VERSION_KEY) in MODERN_VERSIONS


def valid_id(value: Any) -> bool:
    """A JSON-RPC request id MCP accepts: a string or an integer (never null, a bool, a
    float or a structure, which would also break the gateway's tables)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def error(message_id: Any, code: int, text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": text}}


def tool_error(message_id: Any, text: str, *, modern: bool) -> dict[str, Any]:
    """A `tools/call` result the model can read. At 2026-07-28 a result without
    `resultType` is invalid and the SDK's client raises instead of showing the reason."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if modern:
        result["resultType"] = "complete"
    return {"jsonrpc": "2.0", "id": message_id, "result": result}


def input_required(message_id: Any, key: str, request: dict[str, Any],
                   state: str) -> dict[str, Any]:
    """The 2026-07-28 way to ask the user mid-call: the client fulfils the embedded request
    and retries the call with `inputResponses` and the echoed `requestState`."""
    return {"jsonrpc": "2.0", "id": message_id, "result": {
        "resultType": "input_required", "inputRequests": {key: request},
        "requestState": state}}


class Oversized(NamedTuple):
    """A line over MAX_LINE, skipped; `message_id` is its id if one could be read (else
    None), so the request it answers can get an error instead of waiting for ever."""

    size: int
    message_id: Any


_HEAD_ID = re.compile(
    rb'\A\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')
# The last member of the outermost object: the value is followed by that object's `}`.
_TAIL_ID = re.compile(
    rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")\s*(?:,\s*"jsonrpc"\s*:\s*"2\.0"\s*)?\}\s*\Z')
_KEEP = 4096


def _id_of(head: bytes, tail: bytes) -> Any:
    for pattern, text in ((_HEAD_ID, head), (_TAIL_ID, tail)):
        match = pattern.search(text)
        if match:
            try:
                return json.loads(match.group(1))
            except ValueError:
                continue
    return None


async def read_line(reader: asyncio.StreamReader) -> bytes | Oversized | None:
    """One line; an Oversized for a line over the reader's limit (read through and dropped,
    keeping only its ends to find its id); None at end of input."""
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial or None
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
    head = await reader.read(max(consumed, 1))
    size, tail = len(head), head[-_KEEP:]
    head = head[:_KEEP]
    while True:
        try:
            chunk = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            chunk = exc.partial
            size += len(chunk)
            tail = (tail + chunk)[-_KEEP:]
            break
        except asyncio.LimitOverrunError as exc:
            chunk = await reader.read(max(exc.consumed, 1))
            size += len(chunk)
            tail = (tail + chunk)[-_KEEP:]
            continue
        size += len(chunk)
        tail = (tail + chunk)[-_KEEP:]
        break
    return Oversized(size, _id_of(head, tail))
