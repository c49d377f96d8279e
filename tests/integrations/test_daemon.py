"""The daemon as a separate process: hooks over HTTP and through the command, an ask approved
on the approval page, policy reload, and a daemon killed mid-request."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from clihelp import run_cli
from runestone.audit.query import read_entries
from runestone.home import layout
from runestone.identity import create_identity

PRE = {"session_id": "sess-e2e", "transcript_path": "/tmp/t.jsonl", "cwd": "/home/dev/app",
       "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
       "tool_input": {"command": "ls"}, "tool_use_id": "toolu_e2e"}


def post(url: str, body: bytes, headers: dict | None = None):
    request = urllib.request.Request(url, data=body, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def get(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode()


@pytest.fixture
def daemon(isolated_home):
    create_identity(layout())
    run_cli("init")  # the starter policy (developer preset) and the rest of the home
    process = subprocess.Popen([sys.executable, "-m", "runestone", "daemon", "--port", "0"],
                               env={**os.environ, "RUNESTONE_HOME": str(isolated_home)},
                               stderr=subprocess.PIPE, text=True)
    line = process.stderr.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    port = int(match.group(1))
    yield process, port
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def hook_body(command: str, call_id: str = "toolu_e2e") -> bytes:
    return json.dumps({**PRE, "tool_input": {"command": command},
                       "tool_use_id": call_id}).encode()


def decision_of(body: str) -> str:
    return json.loads(body)["hookSpecificOutput"]["permissionDecision"]


def test_end_to_end_with_the_daemon(daemon, tmp_path, isolated_home):
    _process, port = daemon
    base = f"http://127.0.0.1:{port}"
    settings = tmp_path / "settings.json"
    assert run_cli("install", "claude-code", "--settings", str(settings), "--http", "--port",
                   str(port)).returncode == 0
    config = json.loads(settings.read_text())
    handlers = [h for g in config["hooks"]["PreToolUse"] for h in g["hooks"]]
    http_hook = next(h for h in handlers if h["type"] == "http")
    command_hook = next(h for h in handlers if h["type"] == "command")

    # Over HTTP, as Claude Code's http hook would call it.
    status, body, _ = post(http_hook["url"], hook_body("rm -rf ~"))
    assert status == 200 and decision_of(body) == "deny"
    status, body, _ = post(http_hook["url"], hook_body("git status"))
    assert decision_of(body) == "allow"

    # Through the command hook, which goes over the daemon's Unix socket.
    result = subprocess.run(["/bin/sh", "-c", command_hook["command"]],
                            input=hook_body("rm -rf ~").decode(), capture_output=True, text=True,
                            env={**os.environ, "RUNESTONE_HOME": str(isolated_home)}, timeout=60)
    assert result.returncode == 0 and decision_of(result.stdout) == "deny"

    # Claude Code reads any HTTP failure as "proceed", so a broken input is a 200 deny.
    status, body, _ = post(http_hook["url"], b"{not json")
    assert status == 200 and decision_of(body) == "deny"

    # A browser cannot use the hook endpoint or the API.
    assert post(http_hook["url"], hook_body("ls"), {"Origin": "https://evil.example"})[0] == 403
    assert post(f"{base}/api/check", hook_body("ls"))[0] == 401
    token = (layout().keys_dir / "daemon.token").read_text().strip()
    status, body, _ = post(f"{base}/api/check", hook_body("rm -rf ~"),
                           {"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["decision"] == "deny"
    assert json.loads(get(f"{base}/api/health")[1])["ok"] is True

    # An ask, approved on the approval page the daemon serves, then the retry.
    defer = subprocess.run([sys.executable, "-m", "runestone", "hook", "codex"],
                           input=json.dumps({**PRE, "hook_event_name": "PreToolUse",
                                             "tool_input": {"command": "ssh prod-db uptime"},
                                             "tool_use_id": "call_ask"}),
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "RUNESTONE_HOME": str(isolated_home)})
    reason = json.loads(defer.stdout)["hookSpecificOutput"]["permissionDecisionReason"]
    link = re.search(r"(http://127\.0\.0\.1:\d+/approve/\S+)", reason).group(1)
    assert link.startswith(base)
    _, page = get(link)
    csrf = re.search(r"name='csrf' value='([0-9a-f]+)'", page).group(1)
    status, _, _ = post(link, urllib.parse.urlencode({"decision": "approve", "csrf": csrf})
                        .encode(), {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    retry = subprocess.run([sys.executable, "-m", "runestone", "hook", "codex"],
                           input=json.dumps({**PRE, "tool_input": {"command": "ssh prod-db "
                                                                   "uptime"},
                                             "tool_use_id": "call_retry"}),
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "RUNESTONE_HOME": str(isolated_home)})
    assert retry.returncode == 0 and retry.stdout.strip() == ""

    # The audit trail: request -> decision(ask) -> approval -> the allowed retry.
    request_id = reason.split("runestone approvals approve ")[1].split("`")[0]
    entries = list(read_entries(layout().audit_dir))
    linked = [e for e in entries if e.get("request_id") == request_id
              or (e.get("approval") or {}).get("request") == request_id]
    kinds = [(e["kind"], e.get("decision")) for e in linked]
    assert kinds[:3] == [("request", None), ("decision", "ask"), ("approval", "approved")]
    assert kinds[-1] == ("decision", "allow")
    verify = run_cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout


def test_policy_reload_keeps_the_last_good_policy(daemon):
    _process, port = daemon
    url = f"http://127.0.0.1:{port}/hooks/claude-code"
    policy_file = layout().policy_file
    policy_file.write_text('[policy]\ndefault = "ask"\ninclude = ["default"]\n\n[[rule]]\n'
                           'id = "team.ls"\ndecision = "deny"\nreason = "no ls today"\n'
                           'program = ["ls"]\n')
    deadline = time.time() + 15
    while time.time() < deadline and decision_of(post(url, hook_body("ls"))[1]) != "deny":
        time.sleep(0.3)
    assert decision_of(post(url, hook_body("ls"))[1]) == "deny"
    health = json.loads(get(f"http://127.0.0.1:{port}/api/health")[1])
    policy_file.write_text('[policy]\ndefault = "sometimes"\n')  # invalid
    deadline = time.time() + 15
    while time.time() < deadline and not json.loads(
            get(f"http://127.0.0.1:{port}/api/health")[1])["policy_error"]:
        time.sleep(0.3)
    after = json.loads(get(f"http://127.0.0.1:{port}/api/health")[1])
    assert after["policy_error"] and after["policy_hash"] == health["policy_hash"]
    assert decision_of(post(url, hook_body("ls"))[1]) == "deny"  # still the last good one


def test_a_pulled_policy_refused_before_its_record_lands_is_loaded_when_it_does(daemon):
    """A pull replaces the cached team policy and then its signed record. A reload between
    the two is refused (the file is not the signed version yet); the record's arrival must
    load it, not leave the daemon on the old policy until the next publication."""
    from runestone.policy.loader import compile_policy_text
    from runestone.remote.pinned import state_file

    _process, port = daemon
    where = layout()

    def health() -> dict:
        return json.loads(get(f"http://127.0.0.1:{port}/api/health")[1])

    def until(condition) -> dict:
        deadline = time.time() + 15
        while time.time() < deadline and not condition(health()):
            time.sleep(0.2)
        return health()

    texts = ['[policy]\ndefault = "ask"\ninclude = ["default"]\n',
             '[policy]\ndefault = "ask"\ninclude = ["default"]\n\n[[rule]]\nid = "team.ls"\n'
             'decision = "deny"\nreason = "no ls today"\nprogram = ["ls"]\n']
    first, second = (compile_policy_text(text, source="test").hash for text in texts)
    where.state_dir.mkdir(parents=True, exist_ok=True)
    state_file(where).write_text(json.dumps({"number": 1, "hash": first}))
    where.remote_policy_file.write_text(texts[0])
    assert until(lambda h: h["policy_hash"] == first)["policy_hash"] == first

    where.remote_policy_file.write_text(texts[1])  # the file first, as a pull writes it
    refused = until(lambda h: h["policy_error"])
    assert "not the version the control plane signed" in refused["policy_error"]
    assert refused["policy_hash"] == first
    state_file(where).write_text(json.dumps({"number": 2, "hash": second}))  # then the record
    loaded = until(lambda h: h["policy_hash"] == second)
    assert loaded["policy_hash"] == second and not loaded["policy_error"]

    # Every pull rewrites the record (when it last checked), most with the same hash: that
    # is no new policy, and reloads nothing.
    def reloads() -> int:
        return sum(entry["kind"] == "policy-loaded" for entry in read_entries(where.audit_dir))

    before = reloads()
    for checked in range(3):
        state_file(where).write_text(json.dumps({"number": 2, "hash": second,
                                                 "checked": checked}))
        time.sleep(0.7)  # more than the watcher's half-second look
    assert reloads() == before


def test_a_policy_replaced_by_one_of_the_same_size_and_time_is_reloaded(daemon):
    """An editor's save or a pull replaces the file: a new inode, though its size and its
    time (the file system's clock is coarse) may be the old one's."""
    _process, port = daemon
    url = f"http://127.0.0.1:{port}/hooks/claude-code"
    policy_file = layout().policy_file
    rule = ('[policy]\ndefault = "ask"\ninclude = ["default"]\n\n[[rule]]\nid = "team.ls"\n'
            'decision = "{}"\nreason = "{}"\nprogram = ["ls"]\n')
    policy_file.write_text(rule.format("deny", "no ls today"))  # as long as the one below
    deadline = time.time() + 15
    while time.time() < deadline and decision_of(post(url, hook_body("ls"))[1]) != "deny":
        time.sleep(0.3)
    assert decision_of(post(url, hook_body("ls"))[1]) == "deny"
    before = policy_file.stat()
    replacement = policy_file.with_name("policy.toml.new")
    replacement.write_text(rule.format("allow", "ls is fine"))
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, policy_file)
    assert (policy_file.stat().st_size, policy_file.stat().st_mtime_ns) == \
        (before.st_size, before.st_mtime_ns)
    deadline = time.time() + 15
    while time.time() < deadline and decision_of(post(url, hook_body("ls"))[1]) != "allow":
        time.sleep(0.3)
    assert decision_of(post(url, hook_body("ls"))[1]) == "allow"


def test_a_daemon_killed_mid_request_is_a_deny(isolated_home):
    create_identity(layout())
    run_cli("init")
    env = {**os.environ, "RUNESTONE_HOME": str(isolated_home)}
    process = subprocess.Popen([sys.executable, "-m", "runestone", "daemon", "--port", "0",
                                "--approval", "wait"], env=env, stderr=subprocess.PIPE,
                               text=True)
    process.stderr.readline()
    socket_file = Path(layout().state_dir / "daemon.sock")
    assert socket_file.exists()
    # `ssh` asks; in wait mode the daemon holds the request until a human decides.
    hook = subprocess.Popen([sys.executable, "-m", "runestone", "hook", "claude-code"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    hook.stdin.write(hook_body("ssh prod-db uptime").decode())
    hook.stdin.close()
    time.sleep(1.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    out = hook.stdout.read()
    err = hook.stderr.read()
    assert hook.wait(timeout=30) == 2, (out, err)
    assert "daemon" in err and "denied" in err


def test_sdk_calls_the_daemons_tools(isolated_home, tmp_path, monkeypatch):
    create_identity(layout())
    run_cli("init")
    work = tmp_path / "work"
    work.mkdir()
    layout().config_file.write_text(f"[tools.shell]\ncwd_prefixes = ['{work}']\n"
                                    f"[tools.files]\nroots = ['{work}']\n")
    env = {**os.environ, "RUNESTONE_HOME": str(isolated_home)}
    process = subprocess.Popen([sys.executable, "-m", "runestone", "daemon", "--port", "0"],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r":(\d+) ", process.stderr.readline()).group(1))
        from runestone import ToolDenied, call_tool

        result = call_tool("shell.exec", command="echo from the daemon", cwd=str(work))
        assert result["stdout"] == "from the daemon\n" and result["request_id"]
        with pytest.raises(ToolDenied):
            call_tool("shell.exec", command="rm -rf ~", cwd=str(work))
        written = call_tool("files.write", path="out.txt", content="ok", cwd=str(work))
        assert (work / "out.txt").read_text() == "ok" and written["bytes"] == 2
        status, _, _ = post(f"http://127.0.0.1:{port}/tools/shell.exec",
                            json.dumps({"params": {"command": "echo x"}}).encode())
        assert status == 401  # no bearer token, no tool
    finally:
        process.terminate()
        process.wait(timeout=10)
    kinds = [e["kind"] for e in read_entries(layout().audit_dir)]
    assert kinds.count("execution") >= 2 and kinds.count("result") >= 2


def test_a_new_identity_is_refused_while_the_daemon_holds_the_old_one(daemon, isolated_home):
    """The daemon keeps the key and the audit log open: retiring them under it would leave it
    signing and writing with the retired identity."""
    from runestone.identity import load_identity
    from runestone.retire import daemon_running

    process, _port = daemon
    where = layout()
    runtime_id = load_identity(where).runtime_id
    assert daemon_running(where)
    refused = run_cli("init", "--new-identity")
    assert refused.returncode == 1 and "the daemon is running" in refused.stderr
    assert load_identity(where).runtime_id == runtime_id
    assert not (where.config_dir / "retired").exists()

    process.terminate()
    process.wait(timeout=30)
    assert not daemon_running(where)  # its socket file may stay; nobody answers on it
    done = run_cli("init", "--new-identity")
    assert done.returncode == 0, done.stderr
    assert load_identity(where).runtime_id != runtime_id
    assert (where.config_dir / "retired" / runtime_id / "identity.json").exists()


def test_clients_that_hang_up_leave_a_line_in_the_log_not_a_traceback(daemon):
    """Agent hosts drop connections (a timeout, a crash): each is one quiet line, and the
    daemon goes on answering."""
    import socket
    import struct

    process, port = daemon
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"POST /hooks/claude-code HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            # Close with a reset (SO_LINGER 0) in the middle of the request.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    status, body = get(f"http://127.0.0.1:{port}/api/health")
    assert status == 200 and json.loads(body)["ok"]
    process.terminate()
    _, log = process.communicate(timeout=30)
    assert "Traceback" not in log, log


@pytest.mark.parametrize("env", [
    {"RUNESTONE_HOME": "/srv/rs"}, {"RUNESTONE_HOME": "~/rs/"},
    {"XDG_STATE_HOME": "/var/state"}, {"XDG_STATE_HOME": "relative/ignored"}, {}])
def test_the_hooks_socket_path_is_the_daemons(env, monkeypatch):
    from runestone.daemon.paths import daemon_socket
    from runestone.integrations.client import daemon_socket_path

    for name in ("RUNESTONE_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Path(daemon_socket_path()) == daemon_socket(layout())


def test_the_hook_through_the_daemon_imports_almost_nothing(daemon, tmp_path):
    """The client path runs before every tool call: no typing, re, pathlib (urllib.parse,
    ipaddress), nor the runtime's decision modules, nor `socket` (enum, selectors); only the
    bare client on the C `_socket`."""
    code = ("import sys; from runestone.cli import main; code = main(['hook', 'claude-code']);"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'typing', 're',"
            " 'pathlib', 'urllib', 'ipaddress', 'json', 'socket', 'enum', 'selectors'}"
            " or m.startswith('runestone.')), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-S", "-c", code],
                            input=hook_body("git status").decode(), capture_output=True,
                            text=True, check=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert decision_of(result.stdout) == "allow", result.stdout + result.stderr
    loaded = result.stderr.strip().splitlines()[-1]
    assert loaded == str(sorted(["runestone.cli", "runestone.cli.hook",
                                 "runestone.integrations", "runestone.integrations.client"])), \
        loaded


def test_deeply_nested_bodies_get_a_deny_not_a_dropped_connection(daemon):
    """Issue 17: 100,000 nested arrays made the daemon's /api/check drop the connection
    (an HTTP hook reads that as "proceed"). Every endpoint answers a clear deny and the
    daemon goes on serving."""
    _process, port = daemon
    base = f"http://127.0.0.1:{port}"
    token = (layout().keys_dir / "daemon.token").read_text().strip()
    deep = b"[" * 100_000 + b"]" * 100_000
    body = json.dumps({**PRE, "tool_input": {"command": "DEEP"}}).encode().replace(
        b'"DEEP"', deep)
    status, answer, _ = post(f"{base}/api/check", body, {"Authorization": f"Bearer {token}"})
    assert status == 200, answer
    assert json.loads(answer)["decision"] == "deny" and "nested" in answer
    status, answer, _ = post(f"{base}/hooks/claude-code", body)
    assert status == 200 and decision_of(answer) == "deny" and "nested" in answer
    status, answer, _ = post(f"{base}/tools/shell.exec", b'{"params": ' + deep + b"}",
                             {"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(answer)["decision"] == "deny" and "nested" in answer
    status, answer, _ = post(f"{base}/api/check", hook_body("rm -rf ~"),
                             {"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(answer)["decision"] == "deny"


def test_a_daemon_stops_however_many_sigterms_arrive(isolated_home):
    """SIGTERMs a few microseconds apart (a supervisor's stop, then its kill of the group):
    with a handler that set a threading.Event, a second signal landing while the first
    handler held the Event's lock hung the daemon for good (3 of 10 in a probe, and once in
    CI, where a test's cleanup signalled a daemon twice). Each daemon here must leave."""
    import random

    create_identity(layout())
    run_cli("init")
    env = {**os.environ, "RUNESTONE_HOME": str(isolated_home)}
    for _ in range(6):
        process = subprocess.Popen([sys.executable, "-m", "runestone", "daemon", "--port", "0"],
                                   env=env, stderr=subprocess.PIPE, text=True)
        assert "listening" in process.stderr.readline()
        for _ in range(200):
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                break
            gap = time.perf_counter() + random.random() * 0.0003
            while time.perf_counter() < gap:
                pass
        try:
            assert process.wait(timeout=15) == 0
        finally:
            process.kill()
            process.wait()


def test_the_sigterm_handler_never_waits_for_a_lock():
    """The handler runs between two bytecodes of the main thread, which may hold the lock
    of the Event it would set (as a first handler inside Event.set does). TermSignal's
    returns at once there; a handler calling Event.set waits for ever (the control)."""
    script = """
import signal, sys, threading
from runestone.sigterm import TermSignal
stop = threading.Event()
if sys.argv[1] == "event":
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
else:
    term = TermSignal()
with stop._cond:  # as a first handler inside Event.set holds it
    signal.raise_signal(signal.SIGTERM)
print("returned", flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script, "flag"], capture_output=True,
                          text=True, timeout=30)
    assert done.stdout.strip() == "returned", done.stderr
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", script, "event"], capture_output=True,
                       text=True, timeout=3)
