"""`runestone-server quickstart`: one command from nothing to a signed-in admin, on the
embedded default (SQLite in the data directory)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from liveserver import api, free_port, request


def _quickstart(home, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "runestone_server.cli", "quickstart", "--port", str(port)],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "RUNESTONE_SERVER_HOME": str(home)})
    assert process.stdout is not None
    said = []
    for line in process.stdout:
        said.append(line)
        if line.startswith("runestone-server: http://"):
            return process, said
    raise AssertionError(f"quickstart said: {said}")


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=20)


def test_quickstart_creates_once_and_serves(tmp_path):
    pytest.importorskip("uvicorn", reason="the [server] extra is not installed")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process, said = _quickstart(tmp_path / "server", port)
    try:
        found = re.search(r"admin user admin, password (\S+) \(shown this once\)", said[0])
        assert found, said
        password = found.group(1)
        for _ in range(100):  # the URL is said just before uvicorn binds
            try:
                request(base, "GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        token = api(base, "POST", "/api/v1/login", body={
            "organisation": "demo", "username": "admin", "password": password})["token"]
        assert api(base, "GET", "/api/v1/me", token)["org_admin"] is True
        assert (tmp_path / "server" / "runestone.sqlite3").exists()
    finally:
        _stop(process)
    again, said = _quickstart(tmp_path / "server", port)
    try:
        assert "organisations already" in said[0] and "password" not in said[0]
    finally:
        _stop(again)
