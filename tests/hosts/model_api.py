"""A loopback stand-in for Anthropic's Messages API, for driving the real `claude -p`.

It answers the first request that offers tools with one `tool_use` the test chose, streamed
as the real API streams it (server-sent events: message_start, content_block_start,
input_json_delta, content_block_stop, message_delta, message_stop), and every later request
with a short text turn, so Claude Code runs the tool call through its hooks and ends. It
records each request so a test can see what Claude Code sent back (the tool's result).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class MessagesStandIn:
    def __init__(self, tool: str, tool_input: dict[str, Any]) -> None:
        self.tool, self.tool_input = tool, tool_input
        self.requests: list[dict[str, Any]] = []
        self.tool_sent = False
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.end_headers()

            def do_GET(self) -> None:
                self._json({})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
                    self._json({"input_tokens": 10})
                    return
                stand_in.requests.append(body)
                self._stream(stand_in.turn(body), body.get("model", "claude"))

            def _json(self, value: Any) -> None:
                data = json.dumps(value).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, block: dict[str, Any], model: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def turn(self, body: dict[str, Any]) -> dict[str, Any]:
        """The tool call once, to the request that offers that tool; text otherwise."""
        offered = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
        with self._lock:
            if self.tool in offered and not self.tool_sent:
                self.tool_sent = True
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

    def __enter__(self) -> MessagesStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
