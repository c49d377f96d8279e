"""A daemon that is down, made real for the host tests, at the socket the hook looks for.

`stale_socket`: the socket file a daemon that died left behind, with nobody listening (the
hook then decides in-process, with the same policy). `dying_daemon`: a listener that takes
the hook's request and closes the connection without an answer, as a daemon killed
mid-request does (the outcome is unknown, so the hook must deny).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

from runestone.integrations.client import daemon_socket_path


@contextlib.contextmanager
def stale_socket() -> Iterator[str]:
    path = daemon_socket_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()  # the file stays; nothing listens
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def dying_daemon() -> Iterator[list[bytes]]:
    """Accepts each connection, reads the request, closes without answering; yields the
    requests it took (so a test sees the hook did reach it)."""
    path = daemon_socket_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    server.settimeout(0.2)
    taken: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    taken.append(conn.recv(65536))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield taken
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
