"""What the dashboard's browser tests share: a real `runestone-server serve` process, the
runtime CLI, the JSON API, and signing in through the form."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(base: str, method: str, path: str, token: str | None = None, body=None):
    request = urllib.request.Request(
        base + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json",
                 **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def runestone(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "runestone", *args], input=stdin,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "RUNESTONE_HOME": str(home)})
    return result


class Live:
    """A real `runestone-server serve` on SQLite, its organisation made by `init`."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"sqlite:///{tmp / 'web.sqlite3'}"
        self.env = {**os.environ, "RUNESTONE_SERVER_HOME": str(tmp / "server"),
                    "RUNESTONE_ADMIN_PASSWORD": PASSWORD, "RUNESTONE_SERVER_TICK": "0.5",
                    "RUNESTONE_SERVER_PUBLIC_URL": self.base}
        init = subprocess.run([sys.executable, "-m", "runestone_server.cli", "--database-url",
                               self.url, "init", "--organisation", "acme", "--admin", "alice"],
                              env=self.env, capture_output=True, text=True, timeout=120)
        assert init.returncode == 0, init.stderr
        self.log = (tmp / "server.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runestone_server.cli", "--database-url", self.url,
             "serve", "--port", str(self.port)], env=self.env, stdout=self.log,
            stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                call(self.base, "GET", "/healthz")
                break
            except OSError:
                assert self.process.poll() is None, (tmp / "server.log").read_text()
                time.sleep(0.2)
        else:
            raise AssertionError("the server did not start")
        self.token = self.api("POST", "/api/v1/login", body={
            "organisation": "acme", "username": "alice", "password": PASSWORD})["token"]

    def api(self, method: str, path: str, body=None, token: str | None = None):
        return call(self.base, method, path, token or getattr(self, "token", None), body)

    def stop(self) -> None:
        self.process.terminate()
        try:  # uvicorn waits for open long-polls; do not wait for them for long
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


def sign_in(page, live: Live, username: str) -> None:
    """Fill the sign-in form the browser was sent to."""
    page.wait_for_selector("form[action='/login']")
    page.fill("input[name=organisation]", "acme")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()
