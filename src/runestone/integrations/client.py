"""The command hook's way to the daemon: one HTTP request over its Unix socket.

Written on the bare socket, not `http.client`: this runs before every tool call, and the
import of `http.client` alone costs more than the request. If no daemon answers the
connection, the caller decides in-process (same policy, same answer). If a daemon took the
request and then failed (killed, timed out, garbled), the outcome is unknown, so the caller
must deny: `DaemonFailed`.
"""

from __future__ import annotations

import os

CONNECT_TIMEOUT = 0.5
ANSWER_TIMEOUT = 900.0  # a hook may wait for a human (approval mode `wait`)
HOST_NAMES = ("claude-code", "codex", "gemini", "cursor", "copilot")


class DaemonFailed(RuntimeError):
    """The daemon accepted the request but gave no complete answer."""


def daemon_socket_path() -> str:
    """`runestone.daemon.paths.daemon_socket(layout())`, found with `os.path` alone: the
    hook's way to the daemon imports no pathlib (and with it urllib.parse and ipaddress).
    A test keeps the two equal for every way the home is set."""
    home = os.environ.get("RUNESTONE_HOME", "")
    if home:
        return os.path.join(os.path.expanduser(home), "state", "daemon.sock")
    state = os.environ.get("XDG_STATE_HOME", "")
    if not (state and os.path.isabs(state)):
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "runestone", "daemon.sock")


def ask_daemon(socket_file: str | os.PathLike[str], path: str, body: str,
               timeout: float = ANSWER_TIMEOUT, headers: dict[str, str] | None = None,
               ) -> tuple[str, int, str] | None:
    """(body, exit code, stderr) from the daemon; None when no daemon is listening."""
    if not os.path.exists(socket_file):
        return None  # no daemon: decide in-process, without importing `socket` (2.5 ms)
    # The C module itself: `socket` adds enum, selectors, array and more (~3.5 ms of start-up
    # on every hook) for a connect, a send and some reads that `_socket` does alike.
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect(str(socket_file))
    except OSError:
        sock.close()
        return None  # nobody listening: decide in-process
    try:
        sock.settimeout(timeout)
        payload = body.encode("utf-8")
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode("latin-1")
        sock.sendall(b"POST " + path.encode("ascii") + b" HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/json\r\nConnection: close\r\n" + extra
                     + b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n"
                     + payload)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return _parse(b"".join(chunks))
    except OSError as exc:
        raise DaemonFailed(f"the daemon stopped answering mid-request ({exc})") from exc
    finally:
        sock.close()


def _parse(raw: bytes) -> tuple[str, int, str]:
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        raise DaemonFailed("the daemon closed the connection without an answer")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[1] != "200":
        raise DaemonFailed(f"the daemon answered {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is None or not length.isdigit() or len(body) != int(length):
        raise DaemonFailed("the daemon's answer was cut short")
    try:
        exit_code = int(headers.get("x-runestone-exit", "2"))
    except ValueError as exc:
        raise DaemonFailed("the daemon's answer had no exit code") from exc
    return body.decode("utf-8"), exit_code, headers.get("x-runestone-stderr", "")
