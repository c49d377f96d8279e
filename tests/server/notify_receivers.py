"""Real receivers for notification tests: an HTTP server and an SMTP server (aiosmtpd),
each in a thread of the test process, recording what they receive."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class HttpReceiver:
    """Answers each POST with the next status of `statuses` (the last one repeats);
    `location` is sent with 3xx answers; `delay` seconds before answering."""

    statuses: list[int] = field(default_factory=lambda: [200])
    location: str = ""
    delay: float = 0.0
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(Request(self.path, dict(self.headers.items()),
                                                     body, time.time()))
                    index = min(len(receiver.requests), len(receiver.statuses)) - 1
                    status = receiver.statuses[index]
                time.sleep(receiver.delay)
                try:
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", receiver.location)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) on a free local port, keeping each message."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[str, list[str], Message]] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope) -> str:
                receiver.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                          message_from_bytes(envelope.content)))
                return "250 OK"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def make_tenant(app, name: str) -> tuple[int, int, str]:
    """An organisation with one team and an org-admin token: (org_id, team_id, token)."""
    from runestone_server.models import ApiToken, Organisation, Team, User
    from runestone_server.security import hash_password, new_token

    with app.state.db.sessions() as db:
        org = Organisation(name=name)
        db.add(org)
        db.flush()
        team = Team(org_id=org.id, name=f"{name}-team")
        user = User(org_id=org.id, username=f"{name}-admin",
                    password_hash=hash_password("x" * 12), org_admin=True)
        db.add_all([team, user])
        db.flush()
        token, digest = new_token("rst")
        db.add(ApiToken(org_id=org.id, user_id=user.id, name="t", token_hash=digest,
                        scopes=["read", "write"], kind="api"))
        db.commit()
        return org.id, team.id, token
