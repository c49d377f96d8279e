"""Browser tests: Playwright drives Debian's headless Chromium against a real server
process.

`.ci/run` installs /usr/bin/chromium and sets RUNESTONE_TEST_BROWSER=1: then a missing
browser or Playwright is a failure. Without it (the README's test command on a machine
without Chromium) these tests are skipped with the reason. Playwright never downloads a
browser of its own here: it is pointed at the system's Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the [server] extra is not installed")

REQUIRED = os.environ.get("RUNESTONE_TEST_BROWSER", "") not in ("", "0")
CHROMIUM = os.environ.get("RUNESTONE_CHROMIUM") or shutil.which("chromium") or \
    "/usr/bin/chromium"
PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("RUNESTONE_SCREENSHOTS", ROOT / "artifacts" / "screenshots"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"RUNESTONE_TEST_BROWSER is set but {reason}")
    pytest.skip(f"{reason}; install Debian's chromium and `pip install playwright`, then set "
                "RUNESTONE_TEST_BROWSER=1 to run the browser tests")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    """Screenshots of each page, kept as the run's artefacts (ignored by git)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / ".gitignore").write_text("*\n")
    return SHOTS


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


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    server = Live(tmp_path_factory.mktemp("web-server"))
    yield server
    server.stop()


def sign_in(page, live: Live, username: str) -> None:
    """Fill the sign-in form the browser was sent to."""
    page.wait_for_selector("form[action='/login']")
    page.fill("input[name=organisation]", "acme")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()
