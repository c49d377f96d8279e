"""Request bodies are bounded before they are parsed, and what an approver is shown of an
action is bounded (issue 17): a real server process meets 100 MB unauthenticated bodies,
declared and chunked, and its memory stays where it was; what an approver is shown is cut
with a note (`bounded`). The matrix of every route x every caller is in
test_authorization.py; the approval input end to end in test_approvals_end_to_end.py and
test_approvals_routing.py."""

from __future__ import annotations

import json
import select
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveserver import ServerProcess
from runestone.bounded import MAX_SHOWN, TRUNCATED_KEY, bounded

HUNDRED_MB = 100 * 1024 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def read_status(sock: socket.socket) -> int | None:
    """The status of the answer on `sock`, or None when the connection was cut first."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return None
    return int(data.split()[1])


def post_declared(port: int, path: str, length: int) -> int | None:
    """Headers declaring `length` bytes, and no body: the answer must not wait for it."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode())
        return read_status(sock)


def post_chunked(port: int, path: str, total: int) -> tuple[int | None, int]:
    """Send up to `total` bytes chunked, stopping once the server answers or stops
    reading; (the status, or None if cut off; the bytes that were sent)."""
    chunk = b"[" + b"1," * (512 * 1024) + b"1]"
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        try:
            while sent < total:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(framed)
                sent += len(chunk)
        except OSError:
            pass  # the server closed the connection after answering
        return read_status(sock), sent


@pytest.fixture
def live(database_url, tmp_path):
    server = ServerProcess(database_url, tmp_path / "server", RUNESTONE_SERVER_TICK="0")
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_unauthenticated_hundred_megabyte_bodies_are_refused_unread(live):
    assert live.process is not None
    before = rss_kib(live.process.pid)
    for path in ("/api/v1/login", "/api/v1/enroll", "/login"):
        assert post_declared(live.port, path, HUNDRED_MB) == 413
    for path in ("/api/v1/login", "/api/v1/enroll", "/api/v1/runtime/approvals"):
        status, sent = post_chunked(live.port, path, HUNDRED_MB)
        assert status in (413, None), (path, status)
        # Either way the server stopped taking the body long before its end.
        assert sent < HUNDRED_MB // 2, (path, sent)
    grown = rss_kib(live.process.pid) - before
    assert grown < 60 * 1024, f"the server grew by {grown} KiB"
    assert live.login()  # and it still serves


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3000),
                    lambda children: st.lists(children, max_size=8)
                    | st.dictionaries(st.text(max_size=20), children, max_size=8),
                    max_leaves=60))
@settings(max_examples=150, deadline=None)
def test_bounded_fits_and_keeps_what_fits(value):
    limit = 4096
    shown = bounded(value, limit)
    text = json.dumps(shown, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert len(text) <= limit
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")) <= limit:
        assert shown == value
    else:
        assert "the runtime's audit log has the whole action" in json.dumps(shown)


def test_bounded_cuts_one_long_string_and_keeps_its_beginning():
    action = {"tool": "Write", "input": {"file_path": "/p/big.bin",
                                         "content": "A" * 30_000_000}}
    shown = bounded(action)
    assert len(json.dumps(shown)) <= MAX_SHOWN
    assert shown["tool"] == "Write" and shown["input"]["file_path"] == "/p/big.bin"
    assert shown["input"]["content"].startswith("A" * 4096 + " [... 29995904 more characters")
    many = {f"k{n}": "v" * 100 for n in range(5000)}
    assert set(bounded(many)) == {TRUNCATED_KEY}


def test_bounded_makes_what_the_server_refuses_showable():
    """An action may hold a lone surrogate or nest deeply (the runtime reads up to 200
    levels); what the runtime sends with an ask must still be taken by the server's strict
    reading, or the ask would be refused and the call denied."""
    from runestone_server.strictjson import loads

    deep: object = "bottom"
    for _ in range(150):
        deep = [deep]
    action = {"tool": "Bash", "input": {"command": "echo x\ud800y", "\udc00": deep}}
    shown = bounded(action)
    assert loads(json.dumps(shown)) == shown
    assert shown["input"]["command"] == "echo x\ufffdy"
