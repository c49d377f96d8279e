"""The enrolled runtime's client against a server that answers wrongly: a real HTTP server
on loopback answering each status with bodies of every JSON shape. Whatever it says, the
approvals and grants clients see a JSON object or raise their own error, never an
AttributeError from reading `.get` on a list (which turned an ask into an internal-error
deny, and left a grant's refusal unread)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from runestone.home import Layout
from runestone.remote.approvals import ServerApprovals
from runestone.remote.client import RemoteError, ServerUnreachable
from runestone.remote.grants import ServerGrants

BODIES = [b"[1, 2]", b'"text"', b"3", b"null", b"true", b"{}", b'{"detail": "no"}',
          b"not json", b""]


@pytest.fixture(scope="module")
def server():
    """A loopback server whose next answer (status, body) the test sets."""
    answer = {"status": 200, "body": b"{}"}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(answer["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer["body"])))
            self.end_headers()
            self.wfile.write(answer["body"])

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", answer
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _fresh(server):
    server[1].update(status=200, body=b"{}")


def _client(kind, url: str, tmp_path):
    layout = Layout(tmp_path, tmp_path / "state")
    config = {"server": url, "runtime_id": "rt_test", "server_public_key": "x"}
    return kind(layout, config, "credential")


@pytest.mark.parametrize("status", [200, 201, 400, 403, 404, 500])
@pytest.mark.parametrize("body", BODIES)
def test_every_answer_is_an_object_or_the_clients_own_error(server, tmp_path, status, body):
    url, answer = server
    answer.update(status=status, body=body)
    for kind, garbage in ((ServerApprovals, RemoteError), (ServerGrants, ServerUnreachable)):
        client = _client(kind, url, tmp_path)
        try:
            got_status, got = client._call("POST", "/x", {"a": 1}, 5)
        except RemoteError as exc:
            assert status < 400 and isinstance(exc, garbage), (kind, status, body, exc)
            continue
        assert got_status == status and isinstance(got, dict), (kind, status, body, got)
        if status >= 400 and body == b'{"detail": "no"}':
            assert got == {"detail": "no"}


def test_a_refusal_whose_body_is_a_list_is_read_as_a_refusal(server, tmp_path):
    """The callers' own paths: approvals say the control plane refused; grants pulled."""
    url, answer = server
    answer.update(status=403, body=b'["denied"]')
    with pytest.raises(RemoteError, match="HTTP 403"):
        _client(ServerApprovals, url, tmp_path).submit({"x": 1}, timeout=5)
    with pytest.raises(RemoteError, match="HTTP 403"):
        _client(ServerGrants, url, tmp_path).pull()
    answer.update(status=200, body=b'["grants"]')
    with pytest.raises(ServerUnreachable, match="not an object"):
        _client(ServerGrants, url, tmp_path).pull()
