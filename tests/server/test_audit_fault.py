"""The fault test: a real server process and two enrolled runtimes, each a real `runestone
daemon` deciding and auditing and shipping its log in the background. The server is killed
(SIGKILL, mid-traffic) while the runtimes keep deciding; `runestone audit ship` says the
server does not answer; the server restarts on the same database; shipping resumes by
itself. Then every local entry is on the server exactly once, with its hash, and every chain
verifies: on the runtime (`runestone audit verify`) and on the server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import func, select

from liveserver import ServerProcess, api, enroll_runtime, runestone
from runestone.audit.query import read_entries
from runestone.home import Layout
from runestone_server.audit.models import AuditEntry
from runestone_server.db import Database
from runestone_server.models import ServerEvent

COMMANDS = ("ls -la", "rm -rf ~", "git status", "cat README.md")


class Daemon:
    """`runestone daemon` for one runtime home, shipping every 0.2 s."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.log = (home / "daemon.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runestone", "daemon", "--port", "0"],
            env={**os.environ, "RUNESTONE_HOME": str(home),
                 "RUNESTONE_AUDIT_SHIP_INTERVAL": "0.2", "RUNESTONE_PULL_INTERVAL": "3600"},
            stderr=self.log, stdout=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            match = re.search(r"http://127\.0\.0\.1:(\d+)", (home / "daemon.log").read_text())
            if match:
                self.port = int(match.group(1))
                break
            time.sleep(0.05)
        else:
            raise AssertionError((home / "daemon.log").read_text())
        self.token = (home / "keys" / "daemon.token").read_text().strip()
        self.decided = 0

    def decide(self, command: str) -> str:
        body = json.dumps({"session_id": "s", "cwd": str(self.home), "tool_name": "Bash",
                           "hook_event_name": "PreToolUse", "tool_input": {"command": command},
                           "tool_use_id": f"toolu_{self.decided}"}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/check", data=body,
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            decision = json.loads(response.read())["decision"]
        self.decided += 1
        return decision

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)
        self.log.close()


def local_entries(home: Path) -> list[dict]:
    return list(read_entries(Layout(config_dir=home, state_dir=home / "state").audit_dir))


def server_counts(url: str) -> dict[str, dict[int, tuple[int, str]]]:
    """runtime -> seq -> (how many rows, hash)."""
    db = Database(url)
    try:
        with db.sessions() as session:
            rows = session.execute(select(AuditEntry.runtime_id, AuditEntry.seq,
                                          func.count(), func.min(AuditEntry.hash))
                                   .group_by(AuditEntry.runtime_id, AuditEntry.seq)).all()
            problems = session.scalar(select(func.count()).select_from(ServerEvent).where(
                ServerEvent.kind == "audit.chain_problem"))
    finally:
        db.engine.dispose()
    found: dict[str, dict[int, tuple[int, str]]] = {"problems": {0: (problems, "")}}
    for runtime_id, seq, count, digest in rows:
        found.setdefault(runtime_id, {})[seq] = (count, digest)
    return found


def wait_until_shipped(base: str, token: str, team: int, homes: list[Path],
                       timeout: float = 30) -> list[dict]:
    deadline = time.time() + timeout
    while True:
        heads = {local_entries(h)[-1]["runtime"]: local_entries(h)[-1]["seq"] for h in homes}
        chains = api(base, "GET", f"/api/v1/teams/{team}/audit/chains", token)
        if {c["runtime_id"]: c["last_seq"] for c in chains} == heads:
            return chains
        if time.time() > deadline:
            raise AssertionError(f"not shipped: server {chains}, local heads {heads}")
        time.sleep(0.2)


def test_a_killed_server_loses_no_entry_and_duplicates_none(database_url, tmp_path):
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'fault.sqlite3'}"
    server = ServerProcess(database_url, tmp_path / "server")
    server.init()
    server.start()
    token = server.login()
    team = api(server.base, "POST", "/api/v1/teams", token, {"name": "core"})["id"]
    homes = [tmp_path / "one", tmp_path / "two"]

    def enroll(home: Path) -> subprocess.CompletedProcess[str]:
        return enroll_runtime(server.base, token, team, home, {"name": home.name})

    with ThreadPoolExecutor(2) as pool:
        for enrolled in pool.map(enroll, homes):
            assert enrolled.returncode == 0, enrolled.stderr
    daemons = [Daemon(home) for home in homes]
    stop = threading.Event()
    errors: list[BaseException] = []

    def traffic(daemon: Daemon) -> None:
        try:
            while not stop.is_set():
                daemon.decide(COMMANDS[daemon.decided % len(COMMANDS)])
                time.sleep(0.005)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    workers = [threading.Thread(target=traffic, args=(d,)) for d in daemons]
    try:
        for worker in workers:
            worker.start()
        time.sleep(1.0)  # shipping in full flow
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)  # no shutdown, mid-batch
        server.process.wait(timeout=10)
        down_at = [d.decided for d in daemons]
        time.sleep(1.0)  # the runtimes keep deciding and auditing
        assert all(d.decided > n for d, n in zip(daemons, down_at, strict=True)), \
            "the runtimes stopped deciding while the server was down"
        refused = runestone(homes[0], "audit", "ship")
        assert refused.returncode == 1 and "does not answer" in refused.stderr, refused
        assert "stay in the local log" in refused.stderr
        assert "does not answer" in runestone(homes[0], "status").stdout  # says why

        server.start()  # the same database; the runtimes find it again by themselves
        time.sleep(0.5)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        assert not errors, errors
        chains = wait_until_shipped(server.base, token, team, homes)
        for daemon in daemons:
            daemon.stop()
        assert all(c["status"] == "ok" and c["problem"] is None for c in chains), chains

        # Everything arrived exactly once, with the hash the runtime wrote.
        counts = server_counts(database_url)
        assert counts.pop("problems") == {0: (0, "")}
        assert len(counts) == 2
        with ThreadPoolExecutor(2) as pool:
            verified = list(pool.map(lambda h: runestone(h, "audit", "verify"), homes))
            shipped = list(pool.map(lambda h: runestone(h, "audit", "ship"), homes))
        for home, check, again in zip(homes, verified, shipped, strict=True):
            local = local_entries(home)
            assert len(local) > 100  # real traffic on both sides of the outage
            runtime_id = local[0]["runtime"]
            assert counts[runtime_id] == {e["seq"]: (1, e["hash"]) for e in local}
            assert check.returncode == 0 and "intact" in check.stdout, check.stdout
            assert again.returncode == 0 and "nothing to ship" in again.stdout, again
            head = local[-1]["seq"]
            assert f"audit: {head} of {head} entries acknowledged" in runestone(
                home, "status").stdout
        reports = api(server.base, "GET", f"/api/v1/teams/{team}/audit/verify", token)
        assert len(reports) == 2
        for report in reports:
            assert report["ok"], report
            assert report["entries"] == len(counts[report["runtime_id"]])
            assert report["checkpoints"] > 0  # the signed checkpoints were checked too
    finally:
        stop.set()
        for daemon in daemons:
            if daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait(timeout=10)
        if server.process is not None and server.process.poll() is None:
            server.stop()
