"""A real server process and two enrolled runtimes, each with its own data directory:
publish v1, both take it; v2 to one label only; the server stops and the runtimes keep
deciding with their cached versions; it restarts; roll back."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from liveserver import ServerProcess, api, enroll_runtime, runestone

V1 = '[policy]\nname = "v1"\ndefault = "ask"\ninclude = ["default"]\n'
V2 = V1.replace('"v1"', '"v2"') + (
    '\n[[rule]]\nid = "team.no-curl"\ndecision = "deny"\nreason = "no curl in prod"\n'
    'program = ["curl"]\n\n[[test]]\ncommand = "curl https://example.com"\nexpect = "deny"\n')


def decide(home: Path, command: str) -> str:
    result = runestone(home, "check", "--command", command)
    return json.loads(result.stdout)["decision"]


def test_two_runtimes_follow_the_published_policy(database_url, tmp_path):
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'e2e.sqlite3'}"
    server = ServerProcess(database_url, tmp_path / "server")
    server.init()
    server.start()
    try:
        token = server.login()
        team = api(server.base, "POST", "/api/v1/teams", token, {"name": "core"})["id"]
        homes = []
        for label in ("dev", "prod"):
            home = tmp_path / f"runtime-{label}"
            assert runestone(home, "init").returncode == 0
            enrollment = api(server.base, "POST", f"/api/v1/teams/{team}/enrollment-tokens",
                             token, {"labels": {"env": label}})["token"]
            enrolled = runestone(home, "enroll", "--server", server.base, "--token", enrollment)
            assert enrolled.returncode == 0, enrolled.stderr
            homes.append(home)
        dev, prod = homes
        again = runestone(dev, "enroll", "--server", server.base, "--token", enrollment)
        assert again.returncode != 0  # a one-time token

        api(server.base, "POST", f"/api/v1/teams/{team}/policies", token, {"text": V1})
        api(server.base, "POST", f"/api/v1/teams/{team}/publications", token, {"number": 1})
        for home in homes:
            assert runestone(home, "policy", "pull").returncode == 0
            assert '"name": "v1"' not in runestone(home, "status").stdout
            assert "version 1" in runestone(home, "status").stdout
        assert decide(prod, "curl https://example.com") == "ask"

        api(server.base, "POST", f"/api/v1/teams/{team}/policies", token, {"text": V2})
        api(server.base, "POST", f"/api/v1/teams/{team}/publications", token,
            {"number": 2, "selector": {"env": "prod"}})
        for home in homes:
            runestone(home, "policy", "pull")
        assert "version 2" in runestone(prod, "status").stdout
        assert "version 1" in runestone(dev, "status").stdout
        assert decide(prod, "curl https://example.com") == "deny"
        assert decide(dev, "curl https://example.com") == "ask"
        runtimes = api(server.base, "GET", f"/api/v1/teams/{team}/runtimes", token)
        assert {r["labels"]["env"]: r["last_seen"] is not None for r in runtimes} == \
            {"dev": True, "prod": True}
    finally:
        server.stop()

    # The server is gone: the runtimes keep deciding with what they verified last.
    failed = runestone(prod, "policy", "pull")
    assert failed.returncode == 1 and "does not answer" in failed.stderr
    assert decide(prod, "curl https://example.com") == "deny"
    assert "does not answer" in runestone(prod, "status").stdout

    server.start()
    try:
        api(server.base, "POST", f"/api/v1/teams/{team}/publications", token,
            {"number": 1, "selector": {"env": "prod"}})  # roll back
        assert runestone(prod, "policy", "pull").returncode == 0
        assert "version 1" in runestone(prod, "status").stdout
        assert decide(prod, "curl https://example.com") == "ask"
        events = api(server.base, "GET", f"/api/v1/teams/{team}/events", token)
        kinds = [e["kind"] for e in events]
        assert kinds.count("policy.published") == 3 and kinds.count("runtime.enrolled") == 2

        # A running daemon follows publications by itself: no `policy pull` by hand.
        with running_daemon(prod) as health:
            assert health()["policy_hash"] == api(
                server.base, "GET", f"/api/v1/teams/{team}/policies/1", token)["hash"]
            api(server.base, "POST", f"/api/v1/teams/{team}/publications", token,
                {"number": 2, "selector": {"env": "prod"}})
            v2_hash = api(server.base, "GET", f"/api/v1/teams/{team}/policies/2", token)["hash"]
            deadline = time.time() + 90  # pulls every second; generous for a loaded machine
            while health()["policy_hash"] != v2_hash and time.time() < deadline:
                time.sleep(0.2)
            assert health()["policy_hash"] == v2_hash
        assert "version 2" in runestone(prod, "status").stdout
        assert decide(prod, "curl https://example.com") == "deny"
    finally:
        server.stop()


@contextlib.contextmanager
def running_daemon(home: Path):
    """`runestone daemon` for `home`, pulling every second; yields a health reader."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runestone", "daemon", "--port", "0"], stderr=subprocess.PIPE,
        text=True, env={**os.environ, "RUNESTONE_HOME": str(home),
                        "RUNESTONE_PULL_INTERVAL": "1"})
    try:
        assert process.stderr is not None
        match = re.search(r"http://127\.0\.0\.1:(\d+)", process.stderr.readline())
        assert match, "the daemon did not say where it listens"
        base = f"http://127.0.0.1:{match.group(1)}"
        yield lambda: api(base, "GET", "/api/health")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_two_replicas_over_one_database_are_one_server(database_url, tmp_path):
    """Stateless replicas: a session made on one works on the other, a version published
    through one is what a runtime pulls from the other, and their keys are the same key."""
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'replicas.sqlite3'}"
    first, second = ServerProcess(database_url, tmp_path / "server"), ServerProcess(database_url,
                                                                      tmp_path / "server")
    first.init()
    first.start()
    second.start()
    try:
        token = first.login()
        team = api(second.base, "POST", "/api/v1/teams", token, {"name": "core"})["id"]
        home = tmp_path / "runtime"
        assert enroll_runtime(first.base, token, team, home, {"env": "prod"},
                              via=second.base).returncode == 0
        api(first.base, "POST", f"/api/v1/teams/{team}/policies", token, {"text": V2})
        api(second.base, "POST", f"/api/v1/teams/{team}/publications", token, {"number": 1})
        # The runtime enrolled through the second replica; the first one signs its policy.
        remote = json.loads((home / "remote.json").read_text())
        remote["server"] = first.base
        (home / "remote.json").write_text(json.dumps(remote))
        pulled = runestone(home, "policy", "pull")
        assert pulled.returncode == 0, pulled.stderr
        assert decide(home, "curl https://example.com") == "deny"
    finally:
        first.stop()
        second.stop()
