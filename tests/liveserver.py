"""A real `runestone-server serve` process and the runtime's command line, for the tests
that meet the control plane over the network (end to end, faults, approvals, alerts, the
dashboard's browser tests)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(base: str, method: str, path: str, token: str | None = None,
            body: Any = None) -> tuple[int, Any]:
    """(status, JSON answer) of one API call; an HTTP error is an answer, not an exception."""
    sent = urllib.request.Request(
        base + path, method=method, data=json.dumps(body).encode() if body is not None
        else None, headers={"Content-Type": "application/json",
                            **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def api(base: str, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
    """The JSON answer of a call that must succeed."""
    status, answer = request(base, method, path, token, body)
    assert status < 300, (method, path, status, answer)
    return answer


def runestone(home: Path, *args: str, stdin: str = "",
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The runtime's command line with its own home directory."""
    return subprocess.run([sys.executable, "-m", "runestone", *args], input=stdin,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RUNESTONE_HOME": str(home), **(env or {})})


def enroll_runtime(base: str, admin_token: str, team: int, home: Path,
                   labels: dict[str, str] | None = None, *,
                   via: str | None = None) -> subprocess.CompletedProcess[str]:
    """`runestone init` a runtime home, then `runestone enroll` it in `team` with a fresh
    one-time token made through `base` (and enrolled through `via`, another replica, when
    given). The caller checks the answer: some tests expect a refusal."""
    assert runestone(home, "init").returncode == 0
    token = api(base, "POST", f"/api/v1/teams/{team}/enrollment-tokens", admin_token,
                {"labels": labels or {}})["token"]
    return runestone(home, "enroll", "--server", via or base, "--token", token)


class ServerProcess:
    """`runestone-server serve` in a process of its own, on a free port; `init` makes the
    organisation "acme" with the admin "alice"."""

    def __init__(self, url: str, home: Path, *, log: IO[str] | None = None,
                 **env: str) -> None:
        self.url, self.home, self.port, self.log = url, home, free_port(), log
        self.env = {**os.environ, "RUNESTONE_SERVER_HOME": str(home),
                    "RUNESTONE_ADMIN_PASSWORD": PASSWORD,
                    "RUNESTONE_SERVER_PUBLIC_URL": self.base, **env}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def init(self) -> None:
        done = subprocess.run([sys.executable, "-m", "runestone_server.cli", "--database-url",
                               self.url, "init", "--organisation", "acme", "--admin", "alice"],
                              env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runestone_server.cli", "--database-url", self.url,
             "serve", "--port", str(self.port)], env=self.env, stdout=self.log,
            stderr=subprocess.STDOUT if self.log else None)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                request(self.base, "GET", "/healthz")
                return
            except OSError:
                assert self.process.poll() is None, "the server exited while starting"
                time.sleep(0.1)
        raise AssertionError("the server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def login(self, username: str = "alice", password: str = PASSWORD) -> str:
        return api(self.base, "POST", "/api/v1/login", body={
            "organisation": "acme", "username": username, "password": password})["token"]
