"""`runestone mcp wrap`: a stdio MCP server that relays to the real one and gates tools/call.

Everything is relayed as it comes, in both directions: initialize, listings, resources,
prompts, notifications, progress, cancellation, and the server's own requests
(elicitation, sampling, roots) to the client. Only `tools/call` stops at the gate:

  allow  forwarded; the result is audited (size, hash, isError) and linked to the request;
  deny   answered here as a tool result with `isError: true` and the reason; the server
         never sees it;
  ask    asked in-band through elicitation when the client supports it, otherwise the
         approvals `defer` flow (the approval link is in the error text).

A malformed message from either side is refused or dropped with a note on stderr, never a
crash; if the server dies, every open request gets an error and the gateway says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import sys
from typing import Any

from runestone.actions import Action
from runestone.actions.canonical import loads_finite
from runestone.mcp.upstream import MAX_LINE, Upstream

PARSE_ERROR, INVALID_REQUEST, INTERNAL_ERROR, SERVER_GONE = -32700, -32600, -32603, -32000


def _error(message_id: Any, code: int, text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": text}}


def _tool_error(message_id: Any, text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message_id,
            "result": {"content": [{"type": "text", "text": text}], "isError": True}}


class Gateway:
    def __init__(self, upstream: Upstream, *, gatekeeper: Any, load_error: str = "",
                 server_name: str | None = None, agent: str = "mcp") -> None:
        self.upstream = upstream
        self.gatekeeper = gatekeeper
        self.load_error = load_error
        self.server_name = server_name
        self.agent = agent
        self.client_capabilities: dict[str, Any] = {}
        self.session = ""
        self.open_requests: dict[Any, str] = {}      # client request id -> method
        self.gated: dict[Any, tuple[str, Action]] = {}  # tools/call id -> (request id, action)
        self.elicitations: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._out_lock = asyncio.Lock()
        self.server_alive = True
        self._tasks: set[asyncio.Task[None]] = set()    # gates in flight
        self._audits: set[asyncio.Future[None]] = set()  # result entries being written
        self.initialized = asyncio.Event()  # the server's name is known from here on

    # --- wiring ---------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_LINE)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        try:
            await self.upstream.start()
        except Exception as exc:
            print(f"runestone mcp: cannot start the server: {exc}", file=sys.stderr)
            self.server_alive = False
        server_task = asyncio.create_task(self._from_server())
        try:
            await self._from_client(reader)
        finally:
            server_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server_task
            for task in self._tasks:  # the client is gone: nobody waits for these answers
                task.cancel()
            if self._audits:  # but the results of calls that ran are written before we exit
                await asyncio.gather(*self._audits, return_exceptions=True)
            await self.upstream.close()
        return 0

    async def to_client(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False).encode() + b"\n"
        async with self._out_lock:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    # --- client -> server -----------------------------------------------------------------

    async def _from_client(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                await self.to_client(_error(None, PARSE_ERROR, "message over the size limit"))
                continue
            if not line:
                return
            if not line.strip():
                continue
            try:
                message = loads_finite(line)
            except json.JSONDecodeError as exc:
                await self.to_client(_error(None, PARSE_ERROR, f"not JSON: {exc.msg}"))
                continue
            except ValueError as exc:  # NaN, 1e999: no action can be hashed from it
                await self.to_client(_error(None, PARSE_ERROR, f"not JSON: {exc}"))
                continue
            if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
                await self.to_client(_error(message.get("id") if isinstance(message, dict)
                                            else None, INVALID_REQUEST,
                                            "not a JSON-RPC 2.0 message"))
                continue
            await self._client_message(message)

    async def _client_message(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        message_id = message.get("id")
        if method is None and message_id in self.elicitations:
            self.elicitations.pop(message_id).set_result(message)
            return
        if method == "initialize":
            params = message.get("params") or {}
            self.client_capabilities = params.get("capabilities") or {}
            client = (params.get("clientInfo") or {}).get("name")
            if client:
                self.agent = f"mcp:{client}"
        if method is not None and message_id is not None:
            if not self.server_alive:
                await self.to_client(_error(message_id, SERVER_GONE,
                                            "the MCP server is not running"))
                return
            if method == "tools/call":
                task = asyncio.create_task(self._gate(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
            self.open_requests[message_id] = method
        if self.server_alive:
            await self._forward(message)

    async def _forward(self, message: dict[str, Any]) -> None:
        try:
            await self.upstream.send(message)
        except Exception as exc:
            await self._server_gone(f"writing to the server failed: {exc}")

    # --- the gate -------------------------------------------------------------------------

    def _action(self, params: dict[str, Any]) -> Action:
        server = self.server_name or self.upstream.name_hint
        name = str(params.get("name", ""))
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, dict):
            arguments = {"arguments": arguments}
        return Action(f"mcp__{server}__{name}", arguments, "", agent=self.agent,
                      session=self.session)

    async def _gate(self, message: dict[str, Any]) -> None:
        message_id = message["id"]
        params = message.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            await self.to_client(_error(message_id, INVALID_REQUEST,
                                        "tools/call needs params.name"))
            return
        if self.gatekeeper is None:
            await self.to_client(_tool_error(message_id, f"Runestone: the policy cannot be "
                                             f"loaded, nothing is allowed: {self.load_error}"))
            return
        if self.server_name is None:
            # The policy names servers; a call that outruns initialize waits for the name.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.initialized.wait(), timeout=30)
        action = self._action(params)
        try:
            decision = await asyncio.to_thread(self.gatekeeper.check, action,
                                               approval_mode="ask")
            if decision.decision == "ask":
                decision = await self._ask(action, decision)
        except Exception as exc:
            await self.to_client(_tool_error(message_id, f"Runestone: internal error "
                                             f"({type(exc).__name__}: {exc}); denied"))
            return
        if decision.decision != "allow":
            await self.to_client(_tool_error(message_id, f"Runestone denied this call: "
                                             f"{decision.reason}"))
            return
        self.gated[message_id] = (decision.request_id, action)
        self.open_requests[message_id] = "tools/call"
        await self._forward(message)

    async def _ask(self, action: Action, decision: Any) -> Any:
        """A human decides: in-band by elicitation if the client can, else deferred."""
        approvals = self.gatekeeper.approvals
        if "elicitation" not in self.client_capabilities or approvals is None:
            return await asyncio.to_thread(self.gatekeeper.check, action,
                                           approval_mode="defer")
        await asyncio.to_thread(approvals.open_request, action, decision, decision.request_id)
        answer = await self._elicit(action, decision)
        approve = (answer.get("result") or {}).get("action") == "accept" and \
            bool(((answer.get("result") or {}).get("content") or {}).get("approve"))
        await asyncio.to_thread(approvals.decide, decision.request_id, approve=approve,
                                approver=f"{self.agent} (elicitation)",
                                reason="" if approve else "declined in the MCP client")
        return await asyncio.to_thread(self.gatekeeper.check, action, approval_mode="ask") \
            if approve else type(decision)("deny", f"Declined by the user: {decision.reason}",
                                           decision.rules, decision.policy_hash,
                                           decision.action_hash,
                                           request_id=decision.request_id)

    async def _elicit(self, action: Action, decision: Any) -> dict[str, Any]:
        our_id = f"runestone-elicit-{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.elicitations[our_id] = future
        arguments = json.dumps(action.input, ensure_ascii=False)[:2000]
        await self.to_client({"jsonrpc": "2.0", "id": our_id, "method": "elicitation/create",
                              "params": {
                                  "message": f"Runestone: policy asks before "
                                             f"{action.tool} runs with {arguments}. "
                                             f"{decision.reason}",
                                  "requestedSchema": {
                                      "type": "object",
                                      "properties": {"approve": {
                                          "type": "boolean", "title": "Approve this call?"}},
                                      "required": ["approve"]}}})
        try:
            return await asyncio.wait_for(future, timeout=self.gatekeeper.wait_seconds)
        except TimeoutError:
            self.elicitations.pop(our_id, None)
            return {"result": {"action": "cancel"}}

    # --- server -> client -----------------------------------------------------------------

    async def _from_server(self) -> None:
        while True:
            try:
                message = await self.upstream.receive()
            except Exception as exc:
                message = None
                print(f"runestone mcp: reading from the server failed: {exc}", file=sys.stderr)
            if message is None:
                await self._server_gone("the MCP server exited")
                return
            if isinstance(message, str):
                print(f"runestone mcp: dropped a malformed message from the server: "
                      f"{message}", file=sys.stderr)
                continue
            await self._server_message(message)

    async def _server_message(self, message: dict[str, Any]) -> None:
        message_id = message.get("id")
        if "method" not in message and message_id in self.open_requests:
            method = self.open_requests.pop(message_id)
            if method == "initialize":
                info = (message.get("result") or {}).get("serverInfo") or {}
                if self.server_name is None and isinstance(info.get("name"), str) and \
                        info["name"]:
                    self.server_name = info["name"]
                self.initialized.set()
            if message_id in self.gated:
                request_id, action = self.gated.pop(message_id)
                # The call already ran: answer first, then make its result durable. (The
                # request and the decision were durable before the call was forwarded.)
                await self.to_client(message)
                audit = asyncio.ensure_future(asyncio.to_thread(
                    self._audit_result, request_id, action, message))
                self._audits.add(audit)
                audit.add_done_callback(self._audits.discard)
                return
        await self.to_client(message)

    def _audit_result(self, request_id: str, action: Action, message: dict[str, Any]) -> None:
        audit = self.gatekeeper.audit if self.gatekeeper is not None else None
        if audit is None:
            return
        result = message.get("result")
        encoded = json.dumps(result if result is not None else message.get("error"),
                             sort_keys=True, ensure_ascii=False).encode()
        try:
            audit.append([{"kind": "result", "request_id": request_id, "via": "mcp",
                           "tool": action.tool, "result_bytes": len(encoded),
                           "result_sha256": hashlib.sha256(encoded).hexdigest(),
                           "is_error": bool((result or {}).get("isError")) or "error" in message}])
        except Exception as exc:
            print(f"runestone mcp: the result could not be audited: {exc}", file=sys.stderr)

    async def _server_gone(self, why: str) -> None:
        if not self.server_alive:
            return
        self.server_alive = False
        self.initialized.set()
        print(f"runestone mcp: {why}", file=sys.stderr)
        for message_id in list(self.open_requests):
            self.open_requests.pop(message_id)
            self.gated.pop(message_id, None)
            await self.to_client(_error(message_id, SERVER_GONE, f"{why}; the request was "
                                        "not completed"))
