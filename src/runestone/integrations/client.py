"""The command hook's way to the daemon: one HTTP request over its Unix socket.

If no daemon answers the connection, the caller decides in-process (same policy, same
answer). If a daemon took the request and then failed (killed, timed out, garbled), the
outcome is unknown, so the caller must deny: `DaemonFailed`.
"""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

CONNECT_TIMEOUT = 0.5
ANSWER_TIMEOUT = 900.0  # a hook may wait for a human (approval mode `wait`)


class DaemonFailed(RuntimeError):
    """The daemon accepted the request but gave no complete answer."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.timeout)
        self.sock = sock


def ask_daemon(socket_file: Path, path: str, body: str,
               timeout: float = ANSWER_TIMEOUT) -> tuple[str, int, str] | None:
    """(body, exit code, stderr) from the daemon; None when no daemon is listening."""
    if not socket_file.exists():
        return None
    connection = _UnixConnection(socket_file, timeout)
    try:
        connection.connect()
    except OSError:
        return None  # nobody listening: decide in-process
    try:
        connection.request("POST", path, body=body.encode("utf-8"),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read().decode("utf-8")
        if response.status != 200:
            raise DaemonFailed(f"the daemon answered HTTP {response.status}: {data[:200]}")
        exit_code = int(response.getheader("X-Runestone-Exit", "2"))
        stderr = response.getheader("X-Runestone-Stderr", "")
        return data, exit_code, stderr
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise DaemonFailed(f"the daemon stopped answering mid-request ({exc})") from exc
    finally:
        connection.close()
