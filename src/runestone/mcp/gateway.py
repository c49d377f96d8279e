"""`runestone mcp wrap`: a stdio MCP server that relays to the real one and gates tools/call.

Everything is relayed as it comes, in both directions: initialize and server/discover,
listings, resources, prompts, notifications, progress, cancellation, and the server's own
requests (elicitation, sampling, roots) to the client. Only `tools/call` stops at the gate:

  allow  forwarded; the result is audited (size, hash, isError) and linked to the request;
  deny   answered here as a tool result with `isError: true` and the reason; the server
         never sees it;
  ask    asked in-band when the client can elicit (an `elicitation/create` request on the
         handshake protocols, an `input_required` result at 2026-07-28), otherwise the
         approvals `defer` flow (the approval link is in the error text).

Every request the gateway holds is answered or dropped on purpose: a call the client
cancels while it waits at the gate is never forwarded and gets a result entry; a server
that dies fails every call waiting for it or for an approval; an answer over the line limit
becomes an error for the request it answers. A tools/call without a usable id never passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from runestone.actions import Action
from runestone.actions.canonical import loads_finite
from runestone.mcp.upstream import Upstream
from runestone.mcp.wire import (
    CLIENT_CAPABILITIES_KEY,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    MAX_LINE,
    PARSE_ERROR,
    SERVER_GONE,
    SERVER_INFO_KEY,
    Oversized,
    encode_line,
    error,
    input_required,
    is_modern,
    meta_of,
    read_line,
    tool_error,
    valid_id,
)

APPROVAL_KEY = "runestone-approval"  # our key in an input_required result
NAME_WAIT = 10.0  # seconds a call waits for the server's name from a handshake in flight
MAX_ASKED = 256  # input_required asks held at once; the oldest is given up beyond


@dataclass
class Forwarded:
    """A client request the server has: what to do with its answer."""

    method: str
    modern: bool
    request_id: str = ""  # the audit request id of a gated tools/call
    action: Action | None = None


@dataclass
class Gate:
    """A tools/call held at the gate (deciding or waiting for a human)."""

    modern: bool
    action: Action | None = None
    request_id: str = ""
    cancelled: bool = False
    waiting: asyncio.Future[dict[str, Any]] | None = None  # an elicitation in flight
    elicitation_id: str = ""


@dataclass
class Asked:
    """An approval put to the user through an input_required result (2026-07-28)."""

    action: Action
    decision: Any
    deadline: float = field(default=0.0)


def _approval_form(action: Action, reason: str) -> dict[str, Any]:
    arguments = json.dumps(action.input, ensure_ascii=False)[:2000]
    return {"mode": "form",
            "message": f"Runestone: policy asks before {action.tool} runs with {arguments}. "
                       f"{reason}",
            "requestedSchema": {"type": "object", "properties": {"approve": {
                "type": "boolean", "title": "Approve this call?"}}, "required": ["approve"]}}


def _approved(answer: Any) -> bool:
    """An elicitation answer that approves: accepted, with `approve` true (nothing else)."""
    return (isinstance(answer, dict) and answer.get("action") == "accept"
            and isinstance(answer.get("content"), dict)
            and answer["content"].get("approve") is True)


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
        self.forwarded: dict[Any, Forwarded] = {}   # client request id -> what it was
        self.gates: dict[Any, Gate] = {}            # tools/call ids held at the gate
        self.asked: dict[str, Asked] = {}           # input_required state -> the ask
        self._our_states: set[Any] = set()          # states of retries now at the gate
        self.elicitations: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.own_requests: dict[str, asyncio.Future[dict[str, Any]]] = {}  # ours, to server
        self._ids = itertools.count(1)
        self._out_lock = asyncio.Lock()
        self.server_alive = True
        self._tasks: set[asyncio.Task[None]] = set()    # gates in flight
        self._audits: set[asyncio.Future[None]] = set()  # result entries being written
        self._handshake: asyncio.Event | None = None     # set when initialize/discover is answered

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
        data = encode_line(message)
        async with self._out_lock:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    def _audit_later(self, entry: dict[str, Any]) -> None:
        """Append a result entry off the event loop; run() waits for it before exiting."""
        audit = asyncio.ensure_future(asyncio.to_thread(self._append, entry))
        self._audits.add(audit)
        audit.add_done_callback(self._audits.discard)

    def _append(self, entry: dict[str, Any]) -> None:
        log = self.gatekeeper.audit if self.gatekeeper is not None else None
        if log is None:
            return
        try:
            log.append([{"kind": "result", "via": "mcp", **entry}])
        except Exception as exc:
            print(f"runestone mcp: a result could not be audited: {exc}", file=sys.stderr)

    # --- client -> server -----------------------------------------------------------------

    async def _from_client(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await read_line(reader)
            if line is None:
                return
            if isinstance(line, Oversized):
                text = f"a message of {line.size} bytes is over the {MAX_LINE}-byte limit"
                await self.to_client(error(line.message_id if valid_id(line.message_id)
                                           else None, INVALID_REQUEST, text))
                continue
            if not line.strip():
                continue
            try:
                message = loads_finite(line)
            except json.JSONDecodeError as exc:
                await self.to_client(error(None, PARSE_ERROR, f"not JSON: {exc.msg}"))
                continue
            except ValueError as exc:  # NaN, 1e999: no action can be hashed from it
                await self.to_client(error(None, PARSE_ERROR, f"not JSON: {exc}"))
                continue
            if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
                await self.to_client(error(None, INVALID_REQUEST,
                                           "not a JSON-RPC 2.0 message"))
                continue
            await self._client_message(message)

    async def _client_message(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        has_id = "id" in message
        message_id = message.get("id")
        if has_id and not valid_id(message_id):
            if method == "tools/call" or method is not None:
                await self.to_client(error(None, INVALID_REQUEST,
                                           f"{method}: the id must be a string or an integer"))
            else:
                print("runestone mcp: dropped a response with an invalid id from the client",
                      file=sys.stderr)
            return
        if method is None:
            waiter = self.elicitations.pop(message_id, None) if has_id else None
            if waiter is not None:
                if not waiter.done():
                    waiter.set_result(message)
                return
        elif method == "tools/call" and not has_id:
            # A notification cannot be answered, so it cannot be gated: never forwarded.
            print("runestone mcp: refused a tools/call without an id (not forwarded)",
                  file=sys.stderr)
            return
        elif method == "notifications/cancelled":
            if await self._cancelled(message):
                return
        elif method == "initialize":
            params = message.get("params") or {}
            if isinstance(params, dict):
                capabilities = params.get("capabilities")
                self.client_capabilities = capabilities if isinstance(capabilities, dict) else {}
                client = (params.get("clientInfo") or {}).get("name")
                if isinstance(client, str) and client:
                    self.agent = f"mcp:{client}"
        if method is not None and has_id:
            if not self.server_alive:
                await self.to_client(error(message_id, SERVER_GONE,
                                           "the MCP server is not running"))
                return
            if method == "tools/call":
                gate = Gate(modern=is_modern(message))
                self.gates[message_id] = gate
                task = asyncio.create_task(self._gate(message, gate))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
            if method in ("initialize", "server/discover") and self.server_name is None:
                self._handshake = self._handshake or asyncio.Event()
            self.forwarded[message_id] = Forwarded(method, is_modern(message))
        if self.server_alive:
            await self._forward(message)

    async def _cancelled(self, message: dict[str, Any]) -> bool:
        """The client gave up a request. A call still at the gate is stopped there (never
        forwarded); a forwarded one is forgotten and the server told. True when handled."""
        params = message.get("params")
        target = params.get("requestId") if isinstance(params, dict) else None
        if not valid_id(target):
            return False
        reason = params.get("reason") if isinstance(params.get("reason"), str) else ""
        gate = self.gates.get(target)
        if gate is not None:
            gate.cancelled = True
            if gate.waiting is not None and not gate.waiting.done():
                gate.waiting.set_result({"result": {"action": "cancel"}})
            return True  # the server never saw the call: nothing to tell it
        forwarded = self.forwarded.pop(target, None)
        if forwarded is not None and forwarded.action is not None:
            self._audit_later({"request_id": forwarded.request_id,
                               "tool": forwarded.action.tool, "cancelled": True,
                               "ran": "forwarded", "reason": reason or "cancelled by the client"})
        return False

    async def _forward(self, message: dict[str, Any]) -> bool:
        try:
            await self.upstream.send(message)
            return True
        except Exception as exc:
            await self._server_gone(f"writing to the server failed: {exc}")
            return False

    # --- the gate -------------------------------------------------------------------------

    def _capabilities(self, message: dict[str, Any]) -> dict[str, Any]:
        """The client's capabilities for this request: its own `_meta` (2026-07-28 sends
        them with every request), else what initialize said."""
        sent = meta_of(message).get(CLIENT_CAPABILITIES_KEY)
        return sent if isinstance(sent, dict) else self.client_capabilities

    def _action(self, params: dict[str, Any]) -> Action:
        server = self.server_name or self.upstream.name_hint
        name = str(params.get("name", ""))
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, dict):
            arguments = {"arguments": arguments}
        return Action(f"mcp__{server}__{name}", arguments, "", agent=self.agent,
                      session=self.session)

    async def _gate(self, message: dict[str, Any], gate: Gate) -> None:
        message_id = message["id"]
        try:
            answer = await self._judge(message, gate)
        finally:
            self.gates.pop(message_id, None)
        if gate.cancelled:
            # The client gave up while the call was held: it is not forwarded, not answered.
            if gate.action is not None:
                self._audit_later({"request_id": gate.request_id, "tool": gate.action.tool,
                                   "cancelled": True, "ran": False,
                                   "reason": "cancelled by the client before it was forwarded"})
            return
        if answer is not None:
            await self.to_client(answer)
            return
        if not self.server_alive:
            if gate.action is not None:
                self._audit_later({"request_id": gate.request_id, "tool": gate.action.tool,
                                   "is_error": True, "ran": False,
                                   "reason": "the MCP server exited while the call waited"})
            await self.to_client(error(message_id, SERVER_GONE, "the MCP server exited "
                                       "while the call waited at the gate; it did not run"))
            return
        assert gate.action is not None
        self.forwarded[message_id] = Forwarded("tools/call", gate.modern, gate.request_id,
                                               gate.action)
        forward = message
        params = message.get("params")
        if isinstance(params, dict) and params.get("requestState") in self._our_states:
            # Our own ask's bookkeeping is not the server's: strip it before forwarding.
            forward = {**message, "params": {k: v for k, v in params.items()
                                             if k not in ("requestState", "inputResponses")}}
        self._our_states.discard(params.get("requestState") if isinstance(params, dict)
                                 else None)
        if not await self._forward(forward):
            self.forwarded.pop(message_id, None)
            await self.to_client(error(message_id, SERVER_GONE,
                                       "the MCP server is gone; the call did not run"))

    async def _judge(self, message: dict[str, Any], gate: Gate) -> dict[str, Any] | None:
        """The answer to send the client, or None to forward the call."""
        message_id = message["id"]
        modern = gate.modern
        params = message.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            return error(message_id, INVALID_REQUEST, "tools/call needs params.name")
        if self.gatekeeper is None:
            return tool_error(message_id, "Runestone: the policy cannot be loaded, nothing "
                              f"is allowed: {self.load_error}", modern=modern)
        await self._learn_server_name(message)
        action = gate.action = self._action(params)
        try:
            state = params.get("requestState")
            asked = self.asked.pop(state, None) if isinstance(state, str) else None
            if asked is not None:
                self._our_states.add(state)
                decision = await self._answered(action, asked, params.get("inputResponses"))
            else:
                decision = await self._decide(action)
                gate.request_id = decision.request_id
                if decision.decision == "ask" and not gate.cancelled and self.server_alive:
                    decision = await self._ask(message, gate, decision)
                    if isinstance(decision, dict):
                        return decision  # input_required: the client will retry
        except Exception as exc:
            return tool_error(message_id, f"Runestone: internal error "
                              f"({type(exc).__name__}: {exc}); denied", modern=modern)
        gate.request_id = decision.request_id or gate.request_id
        if gate.cancelled or not self.server_alive:
            return None
        if decision.decision != "allow":
            return tool_error(message_id, f"Runestone denied this call: {decision.reason}",
                              modern=modern)
        return None

    async def _decide(self, action: Action) -> Any:
        """The policy's answer, with its entries durable.

        Decided on the event loop when this call is all the gateway has in flight and the
        runtime decides alone (not enrolled, so `check` makes no network call). The loop has
        nothing else to do meanwhile, and the hop to a worker thread and back cost ~0.09 ms
        of the ~0.7 ms the gateway added per call (`bench/mcp.py --baseline`). Otherwise
        it is decided in a worker, so that other calls, answers and cancellations keep
        moving while it is."""
        if not self.forwarded and len(self.gates) == 1 and self._decides_alone():
            return self.gatekeeper.check(action, approval_mode="ask")
        return await asyncio.to_thread(self.gatekeeper.check, action, approval_mode="ask")

    def _decides_alone(self) -> bool:
        """No control plane to ask: the approvals service (if any) is not enrolled. A
        service that cannot be made says no: the worker's `check` meets the error only if
        the call asks, as it did before calls were decided on the loop."""
        try:
            approvals = self.gatekeeper.approvals
            return approvals is None or approvals.remote is None
        except Exception:
            return False

    async def _learn_server_name(self, message: dict[str, Any]) -> None:
        """Policy names servers. The name comes from the server's answer to initialize or
        server/discover; a call waits only for a handshake already in flight, and a 2026-07-28
        client that never probed gets the gateway's own discover, so no call stalls."""
        if self.server_name is not None:
            return
        if self._handshake is not None and not self._handshake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._handshake.wait(), NAME_WAIT)
            return
        if self._handshake is None and is_modern(message) and self.server_alive:
            self._handshake = asyncio.Event()
            our_id = f"runestone-discover-{next(self._ids)}"
            waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self.own_requests[our_id] = waiter
            envelope = {k: v for k, v in meta_of(message).items()
                        if k.startswith("io.modelcontextprotocol/")}
            if await self._forward({"jsonrpc": "2.0", "id": our_id, "method": "server/discover",
                                    "params": {"_meta": envelope}}):
                with contextlib.suppress(TimeoutError):
                    self._learn_from(await asyncio.wait_for(waiter, NAME_WAIT))
            self.own_requests.pop(our_id, None)
            self._handshake.set()

    def _learn_from(self, answer: dict[str, Any]) -> None:
        result = answer.get("result")
        if not isinstance(result, dict) or self.server_name is not None:
            return
        info = result.get("serverInfo")
        meta = result.get("_meta")
        if not isinstance(info, dict) and isinstance(meta, dict):
            info = meta.get(SERVER_INFO_KEY)
        if isinstance(info, dict) and isinstance(info.get("name"), str) and info["name"]:
            self.server_name = info["name"]

    async def _ask(self, message: dict[str, Any], gate: Gate, decision: Any) -> Any:
        """A human decides: in-band if the client can elicit, else deferred with a link."""
        assert gate.action is not None
        action = gate.action
        approvals = self.gatekeeper.approvals
        if "elicitation" not in self._capabilities(message) or approvals is None:
            return await asyncio.to_thread(self.gatekeeper.check, action,
                                           approval_mode="defer")
        await asyncio.to_thread(approvals.open_request, action, decision, decision.request_id)
        if gate.modern:
            self._forget_stale_asks()
            state = secrets.token_urlsafe(24)
            self.asked[state] = Asked(action, decision,
                                      time.monotonic() + self.gatekeeper.wait_seconds)
            return input_required(message["id"], APPROVAL_KEY, {
                "method": "elicitation/create",
                "params": _approval_form(action, decision.reason)}, state)
        answer = await self._elicit(gate, action, decision)
        return await self._settle(action, decision, answer.get("result"),
                                  cancelled=gate.cancelled)

    async def _answered(self, action: Action, asked: Asked, responses: Any) -> Any:
        """The retry of a call we asked about (2026-07-28): it must be the same call."""
        answer = responses.get(APPROVAL_KEY) if isinstance(responses, dict) else None
        if action.hash != asked.action.hash:
            await asyncio.to_thread(self.gatekeeper.approvals.decide, asked.decision.request_id,
                                    approve=False, approver=f"{self.agent} (elicitation)",
                                    reason="the retried call differs from the one asked about")
            return asked.decision._replace(
                decision="deny", reason="The retried call differs from the one the user was "
                                        "asked about; ask again with the same call.")
        return await self._settle(action, asked.decision, answer, cancelled=False)

    async def _settle(self, action: Action, decision: Any, answer: Any, *,
                      cancelled: bool) -> Any:
        approve = _approved(answer) and not cancelled
        why = ("the client cancelled the call" if cancelled else "declined in the MCP client")
        await asyncio.to_thread(self.gatekeeper.approvals.decide, decision.request_id,
                                approve=approve, approver=f"{self.agent} (elicitation)",
                                reason="" if approve else why)
        if approve:
            return await asyncio.to_thread(self.gatekeeper.check, action, approval_mode="ask")
        return decision._replace(decision="deny",
                                 reason=f"Declined by the user: {decision.reason}")

    def _forget_stale_asks(self) -> None:
        now = time.monotonic()
        stale = [s for s, a in self.asked.items() if a.deadline < now]
        stale += list(self.asked)[: max(0, len(self.asked) - MAX_ASKED + 1)]
        for state in stale:
            asked = self.asked.pop(state, None)
            if asked is not None and self.gatekeeper.approvals is not None:
                with contextlib.suppress(Exception):
                    self.gatekeeper.approvals.give_up(asked.decision.request_id)

    async def _elicit(self, gate: Gate, action: Action, decision: Any) -> dict[str, Any]:
        our_id = gate.elicitation_id = f"runestone-elicit-{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.elicitations[our_id] = gate.waiting = future
        form = _approval_form(action, decision.reason)
        form.pop("mode")  # the handshake protocols before 2025-11-25 know no mode
        await self.to_client({"jsonrpc": "2.0", "id": our_id, "method": "elicitation/create",
                              "params": form})
        try:
            answer = await asyncio.wait_for(future, timeout=self.gatekeeper.wait_seconds)
        except TimeoutError:
            answer = {"result": {"action": "cancel"}}
        if self.elicitations.pop(our_id, None) is not None:
            # Not answered by the client (cancelled, server gone, timed out): withdraw it.
            await self.to_client({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                  "params": {"requestId": our_id,
                                             "reason": "the call is no longer waiting"}})
        return answer

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
            if isinstance(message, Oversized):
                await self._oversized(message)
                continue
            if isinstance(message, str):
                print(f"runestone mcp: dropped a malformed message from the server: "
                      f"{message}", file=sys.stderr)
                continue
            await self._server_message(message)

    async def _oversized(self, line: Oversized) -> None:
        """An answer too big to relay: the request it answers gets an error now."""
        text = (f"Runestone: the server's answer is {line.size} bytes, over the gateway's "
                f"{MAX_LINE}-byte message limit; it was not delivered")
        print(f"runestone mcp: {text}", file=sys.stderr)
        if valid_id(line.message_id) and line.message_id in self.forwarded:
            targets = [line.message_id]
        else:  # its id could not be read: nobody may wait for ever, so all that wait fail
            targets = list(self.forwarded)
        for message_id in targets:
            forwarded = self.forwarded.pop(message_id)
            if forwarded.action is not None:
                await self.to_client(tool_error(message_id, text, modern=forwarded.modern))
                self._audit_later({"request_id": forwarded.request_id,
                                   "tool": forwarded.action.tool, "result_bytes": line.size,
                                   "is_error": True, "delivered": False,
                                   "reason": "over the message size limit"})
            else:
                await self.to_client(error(message_id, INTERNAL_ERROR, text))

    async def _server_message(self, message: dict[str, Any]) -> None:
        message_id = message.get("id")
        if "method" not in message and valid_id(message_id):
            waiter = self.own_requests.pop(message_id, None)
            if waiter is not None:
                if not waiter.done():
                    waiter.set_result(message)
                return
            forwarded = self.forwarded.pop(message_id, None)
            if forwarded is not None:
                if forwarded.method in ("initialize", "server/discover"):
                    self._learn_from(message)
                    if self._handshake is not None:
                        self._handshake.set()
                if forwarded.action is not None:
                    # The call already ran: answer first, then make its result durable. (The
                    # request and the decision were durable before the call was forwarded.)
                    await self.to_client(message)
                    self._audit_later(self._result_entry(forwarded, message))
                    return
        await self.to_client(message)

    @staticmethod
    def _result_entry(forwarded: Forwarded, message: dict[str, Any]) -> dict[str, Any]:
        assert forwarded.action is not None
        result = message.get("result")
        encoded = json.dumps(result if result is not None else message.get("error"),
                             sort_keys=True, ensure_ascii=False).encode()
        return {"request_id": forwarded.request_id, "tool": forwarded.action.tool,
                "result_bytes": len(encoded),
                "result_sha256": hashlib.sha256(encoded).hexdigest(),
                "is_error": bool(isinstance(result, dict) and result.get("isError"))
                or "error" in message}

    async def _server_gone(self, why: str) -> None:
        if not self.server_alive:
            return
        self.server_alive = False
        if self._handshake is not None:
            self._handshake.set()
        for waiter in self.own_requests.values():
            if not waiter.done():
                waiter.set_result({})
        for gate in self.gates.values():  # calls waiting for a human: the answer is moot
            if gate.waiting is not None and not gate.waiting.done():
                gate.waiting.set_result({"result": {"action": "cancel"}})
        print(f"runestone mcp: {why}", file=sys.stderr)
        for message_id in list(self.forwarded):
            forwarded = self.forwarded.pop(message_id)
            if forwarded.action is not None:
                self._audit_later({"request_id": forwarded.request_id,
                                   "tool": forwarded.action.tool, "is_error": True,
                                   "ran": "unknown", "reason": why})
            await self.to_client(error(message_id, SERVER_GONE, f"{why}; the request was "
                                       "not completed"))
