"""Real receivers for notification tests: an HTTP server and an SMTP server (aiosmtpd),
each in a thread of the test process, recording what they receive."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class HttpReceiver:
    """Answers each POST with the next status of `statuses` (the last one repeats);
    `location` is sent with 3xx answers; `delay` seconds before answering (or `delays`, one
    per request, the last one repeating). `reason` and `reply` are the reason phrase and
    body it answers with; `raw` replaces the whole answer with these bytes. With `drip`,
    the answer's header lines come one every `drip_every` seconds for `drip` seconds (a
    receiver that never lets a per-read timeout expire)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    location: str = ""
    delay: float = 0.0
    delays: list[float] = field(default_factory=list)
    reason: str | None = None
    reply: bytes = b"ok"
    raw: bytes | None = None
    drip: float = 0.0
    drip_every: float = 0.1
    tls: tuple[str, str] | None = None  # (certificate file, key file): serve HTTPS
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(Request(self.path, dict(self.headers.items()),
                                                     body, time.time()))
                    count = len(receiver.requests)
                    status = receiver.statuses[min(count, len(receiver.statuses)) - 1]
                    delay = (receiver.delays[min(count, len(receiver.delays)) - 1]
                             if receiver.delays else receiver.delay)
                time.sleep(delay)
                try:
                    if receiver.raw is not None:
                        self.wfile.write(receiver.raw)
                        return
                    if receiver.drip:
                        self.wfile.write(f"HTTP/1.1 {status} OK\r\n".encode())
                        self.wfile.flush()
                        until = time.monotonic() + receiver.drip
                        while time.monotonic() < until:
                            self.wfile.write(b"X-Drip: 1\r\n")
                            self.wfile.flush()
                            time.sleep(receiver.drip_every)
                        self.wfile.write(b"Content-Length: 2\r\n\r\nok")
                        return
                    self.send_response(status, receiver.reason)
                    if 300 <= status < 400:
                        self.send_header("Location", receiver.location)
                    self.send_header("Content-Length", str(len(receiver.reply)))
                    self.end_headers()
                    self.wfile.write(receiver.reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class DrippingSmtp:
    """A TCP server that greets like SMTP one continuation line ("220-...") at a time and
    never finishes the greeting: no per-read timeout ever expires on the client's side."""

    def __init__(self, every: float = 0.1) -> None:
        self.every = every
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        with connection:
            while not self._stop.is_set():
                try:
                    connection.sendall(b"220-still greeting\r\n")
                except OSError:
                    return
                time.sleep(self.every)

    def __enter__(self) -> DrippingSmtp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


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


def self_signed(directory: Path, name: str) -> tuple[str, str]:
    """A certificate for the DNS name `name` only (no address in it), and its key: files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                  critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


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


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def channel(client, team: int, token: str, kind: str, target: str) -> dict:
    created = client.post(f"/api/v1/teams/{team}/channels",
                          json={"name": f"{kind}-channel", "kind": kind, "target": target},
                          headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201, created.text
    return created.json()


def send(app, org: int, channel_id: int, **extra) -> None:
    from runestone_server.notify import enqueue
    from runestone_server.notify.models import Channel

    with app.state.db.sessions() as db:
        made = db.get(Channel, channel_id)
        team_id = made.team_id if made is not None else -1  # none: enqueue refuses it
        enqueue(db, org_id=org, team_id=team_id, channel_id=channel_id,
                subject="Approval needed",
                text="rm -rf build/ on ci-7", link="https://runestone.example/a/42",
                data={"request": 42}, **extra)
        db.commit()


def delivery(app):
    """The one delivery in the database."""
    from sqlalchemy import select

    from runestone_server.notify.models import Delivery

    with app.state.db.sessions() as db:
        return db.scalars(select(Delivery)).one()
