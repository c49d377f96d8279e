"""The filtering proxy a networked sandbox reaches the outside through.

It runs in the `runestone sandbox run` process, outside the sandbox, on a Unix socket that
is bound into the sandbox (the sandbox has its own network namespace with only a loopback,
so it has no other way out). Inside, `bridge.py` relays 127.0.0.1:3128 to that socket and
`HTTP(S)_PROXY` point there. The proxy lets through `CONNECT host:port` (HTTPS and other
TLS) and absolute-URI HTTP requests whose host the profile names (`pypi.org`, or
`*.example.com` for its subdomains), to port 443 or 80 unless the profile names a port;
everything else gets `403` with a body that says what was refused. It resolves names
itself, outside, so DNS is not a way out either; refused hosts are remembered for the
result entry and the explanation the agent gets.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from fnmatch import fnmatchcase

_HEADER_LIMIT = 64 * 1024


def host_allowed(host: str, port: int, allowed: tuple[str, ...]) -> bool:
    """Whether `host:port` is one the profile names; a name without a port allows 80
    and 443."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        name, _, wanted = entry.partition(":")
        ports = (int(wanted),) if wanted else (80, 443)
        if port not in ports:
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and host != name[2:]:
                return True
        elif fnmatchcase(host, name):
            return True
    return False


def _split_host(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = authority.rpartition(":") if authority.count(":") == 1 \
            else (authority, "", "")
        if not host:
            host, port = authority, ""
    return host, int(port) if port.isdigit() else default_port


class FilteringProxy:
    """A small HTTP proxy on a Unix socket, allowing only the named hosts."""

    def __init__(self, socket_path: str, allowed: tuple[str, ...], profile: str) -> None:
        self.allowed = allowed
        self.profile = profile
        self.refused: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                proxy.serve(self.connection, self.rfile)

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(socket_path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="sandbox-proxy")

    def start(self) -> FilteringProxy:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _refuse(self, conn: socket.socket, what: str, why: str) -> None:
        with self._lock:
            if what not in self.refused:
                self.refused.append(what)
        body = (f"runestone sandbox (profile {self.profile}) refused network access to {what}: "
                f"{why}\n").encode()
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
                     b"X-Runestone-Sandbox: refused\r\nConnection: close\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    def serve(self, conn: socket.socket, rfile: object) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
            if len(head) > _HEADER_LIMIT:
                return self._refuse(conn, "(a request)", "its header is too large")
        header, _, rest = head.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return self._refuse(conn, "(a request)", "not an HTTP proxy request")
        method, target, version = parts
        if method.upper() == "CONNECT":
            host, port = _split_host(target, 443)
        elif target.lower().startswith("http://"):
            authority = target[7:].split("/", 1)[0].rsplit("@", 1)[-1]
            host, port = _split_host(authority, 80)
        else:
            return self._refuse(conn, target[:200], "only CONNECT and http:// requests pass")
        if not host_allowed(host, port, self.allowed):
            return self._refuse(conn, f"{host}:{port}", "the host is not in the profile's "
                                "network list")
        try:
            upstream = socket.create_connection((host, port), timeout=30)
        except OSError as exc:
            body = f"runestone sandbox proxy: cannot reach {host}:{port}: {exc}\n".encode()
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            return None
        upstream.settimeout(None)
        with upstream:
            if method.upper() == "CONNECT":
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
            else:
                path = "/" + target[7:].split("/", 1)[1] if "/" in target[7:] else "/"
                kept = [line for line in lines[1:]
                        if not line.lower().startswith(("proxy-", "connection:"))]
                request = "\r\n".join([f"{method} {path} {version}", *kept,
                                       "Connection: close"]) + "\r\n\r\n"
                upstream.sendall(request.encode("latin-1") + rest)
            _pipe(conn, upstream)
        return None


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes."""

    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=copy, args=(b, a), daemon=True)
    other.start()
    copy(a, b)
    other.join(timeout=60)
