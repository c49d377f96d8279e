"""Loopback stand-ins for the hosts' model APIs, for driving the real `claude -p`,
`gemini -p` and `codex exec`.

`MessagesStandIn` (Anthropic's Messages API) answers the first request that offers tools
with one `tool_use` the test chose, streamed as the real API streams it (server-sent events:
message_start, content_block_start, input_json_delta, content_block_stop, message_delta,
message_stop), and every later request with a short text turn, so Claude Code runs the tool
call through its hooks and ends. `GeminiStandIn` (the Gemini API) and `ResponsesStandIn`
(OpenAI's Responses API, for Codex) do the same. Each records the requests so a test can
see what the host sent back (the tool's result). What they do alike (the loopback server, the
one tool call, the request handling) is `StandIn` and `_Handler`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class _Handler(BaseHTTPRequestHandler):
    """What every stand-in's request handler does alike: no log lines, a JSON body in, a
    JSON answer or the start of an event stream out. `stand_in` is set per server."""

    stand_in: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _json(self, value: Any) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, headers: dict[str, str] | None = None) -> None:
        """The head of a server-sent event stream, with these headers after its type."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()


class StandIn:
    """A loopback server answering with `handler` (started and stopped by `with`), the
    requests it recorded, and the test's tool call, sent once: `tool_sent`, and `called`,
    the name it went out under."""

    def __init__(self, tool: str, handler: type[_Handler], path: str = "") -> None:
        self.tool = tool
        self.called: str | None = None
        self.requests: list[dict[str, Any]] = []
        self.tool_sent = False
        self._lock = threading.Lock()
        bound = type(handler.__name__, (handler,), {"stand_in": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), bound)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _is_tool(self, name: str) -> bool:
        return name == self.tool

    def _call_once(self, offered: Iterable[Any]) -> str | None:
        """The offered name to call the test's tool under, the first time one is offered;
        None otherwise (then the turn is text)."""
        chosen = [n for n in offered if isinstance(n, str) and self._is_tool(n)]
        with self._lock:
            if chosen and not self.tool_sent:
                self.tool_sent, self.called = True, chosen[0]
                return chosen[0]
        return None

    def said(self) -> str:
        """What the host sent back about the call (the tool's result), as JSON text."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _MessagesHandler(_Handler):
    stand_in: MessagesStandIn

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        self._json({})

    def do_POST(self) -> None:
        body = self._body()
        if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
            self._json({"input_tokens": 10})
            return
        self.stand_in.requests.append(body)
        self._stream(self.stand_in.turn(body), body.get("model", "claude"))

    def _stream(self, block: dict[str, Any], model: str) -> None:
        self._start_stream({"Cache-Control": "no-cache"})
        usage = {"input_tokens": 10, "output_tokens": 1}
        start = {"type": "message_start", "message": {
            "id": "msg_standin", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": usage}}
        events = [("message_start", start)]
        if block["type"] == "tool_use":
            events += [
                ("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {**block, "input": {}}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "input_json_delta",
                                                   "partial_json": json.dumps(
                                                       block["input"])}})]
            stop = "tool_use"
        else:
            events += [
                ("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta",
                                                   "text": block["text"]}})]
            stop = "end_turn"
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {
                "stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 5}}),
            ("message_stop", {"type": "message_stop"})]
        for name, data in events:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()


class MessagesStandIn(StandIn):
    """A loopback stand-in for Anthropic's Messages API (Claude Code's, and Copilot CLI's
    with its BYOK settings), as the module's docstring says."""

    def __init__(self, tool: str, tool_input: dict[str, Any]) -> None:
        super().__init__(tool, _MessagesHandler)
        self.tool_input = tool_input

    def turn(self, body: dict[str, Any]) -> dict[str, Any]:
        """The tool call once, to the request that offers that tool; text otherwise."""
        if self._call_once(t.get("name") for t in body.get("tools") or []
                           if isinstance(t, dict)) is not None:
            return {"type": "tool_use", "id": "toolu_standin_1", "name": self.tool,
                    "input": self.tool_input}
        return {"type": "text", "text": "done"}

    def tool_results(self) -> list[Any]:
        """The tool_result blocks Claude Code sent back: what became of the call."""
        found = []
        for request in self.requests:
            for message in request.get("messages", []):
                content = message.get("content")
                for block in content if isinstance(content, list) else []:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        found.append(block)
        return found

    def said(self) -> str:
        return json.dumps(self.tool_results())


class _GeminiHandler(_Handler):
    stand_in: GeminiStandIn

    def do_GET(self) -> None:
        self.stand_in.paths.append(f"GET {self.path}")
        self._json({"models": []})

    def do_POST(self) -> None:
        body = self._body()
        self.stand_in.paths.append(f"POST {self.path}")
        if ":countTokens" in self.path:
            self._json({"totalTokens": 10})
        elif ":streamGenerateContent" in self.path:
            self.stand_in.requests.append(body)
            chunk = self.stand_in.response(self.stand_in.turn(body))
            self._start_stream()
            self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
            self.wfile.flush()
        else:  # Gemini CLI's own side questions (next speaker, loop checks)
            self._json(self.stand_in.response(
                {"text": json.dumps({"reasoning": "done", "next_speaker": "user"})}))


class GeminiStandIn(StandIn):
    """A loopback stand-in for the Gemini API (`GOOGLE_GEMINI_BASE_URL`), for the real
    `gemini -p`.

    Gemini CLI streams its turns from `POST /v1beta/models/<model>:streamGenerateContent
    ?alt=sse`; the first one that offers the test's function gets one `functionCall` part,
    every later one a short text, so the call goes through the `BeforeTool` hook and the
    session ends. Side requests (`:generateContent` for Gemini CLI's own JSON checks,
    `:countTokens`) get a plain answer. Each streamed request is recorded so a test can see
    the `functionResponse` Gemini CLI sent back.
    """

    def __init__(self, tool: str, args: dict[str, Any],
                 match: Callable[[str], bool] | None = None) -> None:
        """`match` picks the function by its declared name instead (an MCP tool's name is
        Gemini CLI's to choose); `called` is the name the call went out under."""
        super().__init__(tool, _GeminiHandler)
        self.args, self.match = args, match
        self.paths: list[str] = []

    def _is_tool(self, name: str) -> bool:
        return self.match(name) if self.match else name == self.tool

    def turn(self, body: dict[str, Any]) -> dict[str, Any]:
        """The function call once, to the request that offers it; text otherwise."""
        name = self._call_once(d.get("name") for t in body.get("tools") or []
                               if isinstance(t, dict)
                               for d in t.get("functionDeclarations") or []
                               if isinstance(d, dict))
        if name is not None:
            return {"functionCall": {"name": name, "args": self.args}}
        return {"text": "done"}

    @staticmethod
    def response(part: dict[str, Any]) -> dict[str, Any]:
        return {"candidates": [{"content": {"role": "model", "parts": [part]},
                                "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1,
                                  "totalTokenCount": 11},
                "modelVersion": "gemini-2.5-flash"}

    def function_responses(self) -> list[Any]:
        """The functionResponse parts Gemini CLI sent back: what became of the call."""
        return [part["functionResponse"] for request in self.requests
                for content in request.get("contents") or [] if isinstance(content, dict)
                for part in content.get("parts") or []
                if isinstance(part, dict) and "functionResponse" in part]

    def said(self) -> str:
        return json.dumps(self.function_responses())


class _ResponsesHandler(_Handler):
    stand_in: ResponsesStandIn

    def do_GET(self) -> None:
        self._json({"object": "list", "data": [], "models": []})

    def do_POST(self) -> None:
        body = self._body()
        self.stand_in.requests.append(body)
        self._start_stream({"Connection": "close"})
        for event in self.stand_in.events(self.stand_in.turn(body)):
            self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
                             .encode())
        self.wfile.flush()


class ResponsesStandIn(StandIn):
    """A loopback stand-in for OpenAI's Responses API, for the real `codex exec` (its
    `config.toml` names a `[model_providers.*]` entry whose `base_url` is this server).

    Codex streams each turn from `POST /v1/responses` (server-sent events:
    response.created, response.output_item.done, response.completed); the first request
    that offers the test's function gets one `function_call` item, every later one a short
    assistant message, so the call goes through the hooks and the session ends. Each request
    is recorded so a test can see the `function_call_output` Codex sent back.
    """

    def __init__(self, tool: str, args: dict[str, Any]) -> None:
        super().__init__(tool, _ResponsesHandler, "/v1")
        self.args = args

    def turn(self, body: dict[str, Any]) -> dict[str, Any]:
        """The function call once, to the request that offers it; a message otherwise."""
        if self._call_once(t.get("name") for t in body.get("tools") or []
                           if isinstance(t, dict)) is not None:
            return {"type": "function_call", "id": "fc_standin_1",
                    "call_id": "call_standin_1", "name": self.tool,
                    "arguments": json.dumps(self.args), "status": "completed"}
        return {"type": "message", "id": "msg_standin", "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "done", "annotations": []}]}

    @staticmethod
    def events(item: dict[str, Any]) -> list[dict[str, Any]]:
        usage = {"input_tokens": 10, "output_tokens": 1, "total_tokens": 11,
                 "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens_details": {"reasoning_tokens": 0}}
        response = {"id": "resp_standin", "object": "response", "output": [], "usage": usage}
        return [{"type": "response.created", "response": {**response, "status": "in_progress"}},
                {"type": "response.output_item.done", "output_index": 0, "item": item},
                {"type": "response.completed", "response": {**response, "status": "completed"}}]

    def function_outputs(self) -> list[Any]:
        """The function_call_output items Codex sent back: what became of the call."""
        return [item for request in self.requests for item in request.get("input") or []
                if isinstance(item, dict) and item.get("type") == "function_call_output"]

    def said(self) -> str:
        return json.dumps(self.function_outputs())
