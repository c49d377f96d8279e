"""The daemon's `/metrics`: its decisions and hook latency in the Prometheus text format,
read with prometheus_client's own parser, moving as hooks are answered; local callers only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from clihelp import run_cli
from runestone.home import layout
from runestone.identity import create_identity

parser = pytest.importorskip("prometheus_client.parser", reason="the [test] extra is missing")

PRE = {"session_id": "sess-m", "transcript_path": "/tmp/t.jsonl", "cwd": "/home/dev/app",
       "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
       "tool_input": {"command": "ls"}, "tool_use_id": "toolu_m"}


@pytest.fixture
def port(isolated_home):
    create_identity(layout())
    run_cli("init")
    process = subprocess.Popen([sys.executable, "-m", "runestone", "daemon", "--port", "0"],
                               env={**os.environ, "RUNESTONE_HOME": str(isolated_home)},
                               stderr=subprocess.PIPE, text=True)
    line = process.stderr.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    yield int(match.group(1))
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def _hook(port: int, command: str, n: int) -> str:
    body = json.dumps({**PRE, "tool_input": {"command": command},
                       "tool_use_id": f"toolu_m{n}"}).encode()
    sent = urllib.request.Request(f"http://127.0.0.1:{port}/hooks/claude-code", data=body,
                                  headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(sent, timeout=30) as answer:
        return json.loads(answer.read())["hookSpecificOutput"]["permissionDecision"]


def _metrics(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in parser.text_string_to_metric_families(text) for s in family.samples}


def test_decisions_and_hook_latency(port):
    empty = _metrics(port)
    assert not [k for k in empty if k[0] == "runestone_daemon_decisions_total"]
    assert _hook(port, "ls", 1) == "allow"
    assert _hook(port, "rm -rf ~", 2) == "deny"
    assert _hook(port, "rm -rf /", 3) == "deny"
    found = _metrics(port)
    decisions = "runestone_daemon_decisions_total"
    assert found[(decisions, frozenset({"host": "claude-code", "outcome": "allow"}.items()))] == 1
    assert found[(decisions, frozenset({"host": "claude-code", "outcome": "deny"}.items()))] == 2
    host = frozenset({"host": "claude-code"}.items())
    assert found[("runestone_daemon_hook_duration_seconds_count", host)] == 3
    assert found[("runestone_daemon_hook_duration_seconds_sum", host)] > 0
    infinite = frozenset({"host": "claude-code", "le": "+Inf"}.items())
    assert found[("runestone_daemon_hook_duration_seconds_bucket", infinite)] == 3


def test_only_local_callers(port):
    sent = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                  headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(sent, timeout=30)
    assert refused.value.code == 421
    browser = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(browser, timeout=30)
    assert refused.value.code == 403
