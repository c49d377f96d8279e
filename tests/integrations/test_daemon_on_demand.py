"""The daemon started on demand (RUNESTONE_DAEMON=auto): the hook that finds none answers
in-process and starts one; later hooks go through it; one runs per home however many are
started; it leaves once idle, taking its socket with it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clihelp import run_cli
from runestone.daemon.server import socket_path
from runestone.home import layout
from runestone.identity import create_identity

PRE = {"session_id": "sess-od", "transcript_path": "/tmp/t.jsonl", "cwd": "/home/dev/app",
       "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
       "tool_input": {"command": "ls"}, "tool_use_id": "toolu_od"}


def _get(path: Path, route: str) -> dict:
    """A GET over the daemon's Unix socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(f"GET {route} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                     .encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    return json.loads(raw.partition(b"\r\n\r\n")[2])


def _hook(env: dict[str, str], command: str, call: str) -> dict:
    body = json.dumps({**PRE, "tool_input": {"command": command}, "tool_use_id": call})
    done = subprocess.run([sys.executable, "-m", "runestone", "hook", "claude-code"],
                          input=body, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["hookSpecificOutput"]


def _wait_for(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _answers(path: Path) -> bool:
    try:
        return _get(path, "/api/health")["ok"]
    except OSError:
        return False


@pytest.fixture
def home(isolated_home):
    create_identity(layout())
    run_cli("init")
    env = {**os.environ, "RUNESTONE_HOME": str(isolated_home), "RUNESTONE_DAEMON": "auto",
           "RUNESTONE_DAEMON_IDLE": "600"}
    pids: list[int] = []
    yield env, pids
    path = socket_path(layout())
    if _answers(path):
        pids.append(_get(path, "/api/health")["pid"])
    for pid in pids:  # only the daemons these tests started
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def test_a_hook_that_finds_no_daemon_starts_one_and_the_next_goes_through_it(home) -> None:
    env, pids = home
    path = socket_path(layout())
    assert not path.exists()
    first = _hook(env, "ls", "toolu_1")  # decided in-process
    assert first["permissionDecision"] == "allow"
    assert _wait_for(lambda: _answers(path)), (layout().state_dir / "daemon.log").read_text()
    health = _get(path, "/api/health")
    pids.append(health["pid"])
    second = _hook(env, "rm -rf ~", "toolu_2")
    assert second["permissionDecision"] == "deny"
    # The daemon decided it: its metrics count the decision.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert b'runestone_daemon_decisions_total{host="claude-code",outcome="deny"} 1' in raw
    assert _get(path, "/api/health")["pid"] == health["pid"]  # still the same daemon


def test_one_daemon_per_home_however_many_are_started(home) -> None:
    env, pids = home
    path = socket_path(layout())
    started = [subprocess.Popen([sys.executable, "-m", "runestone", "daemon", "--on-demand"],
                                env=env, stderr=subprocess.DEVNULL) for _ in range(3)]
    assert _wait_for(lambda: _answers(path))
    pids.extend(p.pid for p in started)
    survivor = _get(path, "/api/health")["pid"]
    others = [p for p in started if p.pid != survivor]
    for process in others:
        assert process.wait(timeout=120) == 0  # saw the lock (or the live socket) and left
    assert _get(path, "/api/health")["pid"] == survivor


def test_an_idle_daemon_leaves_and_takes_its_socket(home) -> None:
    env, pids = home
    env = {**env, "RUNESTONE_DAEMON_IDLE": "1"}
    path = socket_path(layout())
    process = subprocess.Popen([sys.executable, "-m", "runestone", "daemon", "--on-demand"],
                               env=env, stderr=subprocess.DEVNULL)
    pids.append(process.pid)
    assert process.wait(timeout=120) == 0
    assert not path.exists()
    # With no daemon, a hook still answers (in-process) and starts a new one.
    assert _hook(env, "ls", "toolu_3")["permissionDecision"] == "allow"


def test_no_daemon_is_started_without_opting_in(home) -> None:
    env, _pids = home
    env = {k: v for k, v in env.items() if k != "RUNESTONE_DAEMON"}
    assert _hook(env, "ls", "toolu_4")["permissionDecision"] == "allow"
    # A start leaves its marker or the daemon's log (opened by the hook's spawn) behind.
    assert not (layout().state_dir / "daemon.starting").exists()
    assert not (layout().state_dir / "daemon.log").exists()
    assert not socket_path(layout()).exists()
