"""Idempotency keys on the runtime's own tools: a retry with the same key and call returns
the first response and runs nothing again (a process id, a file on disk and an HTTP server's
hit count are the witnesses); another call under a used key is refused; a call that was
not allowed frees its key; concurrent calls with one key (threads and separate processes)
run it exactly once; a claim left by an interrupted call is refused, not re-run."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runestone.audit.query import read_entries
from runestone.gatekeeper import Gatekeeper
from runestone.home import layout
from runestone.identity import create_identity
from runestone.tools import idempotency
from runestone.tools.runner import run_tool
from runestone.tools.settings import FileSettings, HttpSettings, ShellSettings, ToolSettings

POLICY = """
[policy]
default = "ask"

[[rule]]
id = "t.shell"
decision = "allow"
reason = "test shell"
program = ["echo", "sh", "sleep"]

[[rule]]
id = "t.write"
decision = "allow"
reason = "test writes"
tool = ["Write"]

[[rule]]
id = "t.fetch"
decision = "allow"
reason = "test fetches"
family = ["web_fetch"]
"""
PID = "sh -c 'echo $$'"  # a different output on every run


@pytest.fixture
def setup(isolated_home, tmp_path):
    create_identity(layout())
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    keeper = Gatekeeper.from_layout(layout(), policy_file=policy)
    work = tmp_path / "work"
    work.mkdir()
    settings = ToolSettings(shell=ShellSettings(cwd_prefixes=(str(work),), timeout_seconds=20),
                            files=FileSettings(roots=(str(work),)),
                            http=HttpSettings(allow_networks=("127.0.0.1/32",)))
    return keeper, settings, work, policy


def call(setup, name, **params):
    keeper, settings, work, _ = setup
    return run_tool(keeper, settings, name, params, cwd=str(work), agent="test")


def executions() -> int:
    return sum(1 for e in read_entries(layout().audit_dir) if e.get("kind") == "execution")


def test_a_retried_shell_call_returns_the_first_result(setup):
    first = call(setup, "shell.exec", command=PID, idempotency_key="deploy-1")
    assert first.decision == "allow" and not first.replayed, first.reason
    again = call(setup, "shell.exec", command=PID, idempotency_key="deploy-1")
    assert again.replayed and again.decision == "allow"
    assert again.result == first.result and again.request_id == first.request_id
    assert "Replayed" in again.reason and executions() == 1
    assert json.loads(json.dumps(again.to_json()))["replayed"] is True
    replays = [e for e in read_entries(layout().audit_dir) if e.get("kind") == "replay"]
    assert [r["request_id"] for r in replays] == [first.request_id]
    # Without a key, or with another key, the call runs again.
    assert call(setup, "shell.exec", command=PID).result["stdout"] != first.result["stdout"]
    other = call(setup, "shell.exec", command=PID, idempotency_key="deploy-2")
    assert not other.replayed and other.result["stdout"] != first.result["stdout"]


def test_another_call_under_a_used_key_is_refused(setup):
    assert call(setup, "shell.exec", command="echo a", idempotency_key="k").decision == "allow"
    for params in ({"command": "echo b"}, {"command": "echo a", "env": {"LANG": "C"}}):
        refused = call(setup, "shell.exec", **params, idempotency_key="k")
        assert refused.decision == "deny" and "different call" in refused.reason
    # Another tool under the same key is another call too.
    refused = call(setup, "files.write", path="a.txt", content="a", idempotency_key="k")
    assert refused.decision == "deny" and "different call" in refused.reason
    assert executions() == 1


def test_a_retried_write_does_not_write_again(setup):
    work = setup[2]
    first = call(setup, "files.write", path="out.txt", content="v1", idempotency_key="w")
    assert first.decision == "allow", first.reason
    (work / "out.txt").write_text("changed by someone since")
    again = call(setup, "files.write", path="out.txt", content="v1", idempotency_key="w")
    assert again.replayed and again.result == first.result
    assert (work / "out.txt").read_text() == "changed by someone since"
    refused = call(setup, "files.write", path="out.txt", content="v2", idempotency_key="w")
    assert refused.decision == "deny" and (work / "out.txt").read_text().startswith("changed")


def test_a_retried_request_reaches_the_server_once(setup):
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            hits.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(201)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"created")

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/orders"
        answers = [call(setup, "http.request", url=url, method="POST", body="one order",
                        idempotency_key="order-17") for _ in range(3)]
    finally:
        httpd.shutdown()
    assert hits == [b"one order"]
    assert [a.replayed for a in answers] == [False, True, True]
    assert all(a.result["status"] == 201 for a in answers)


def test_a_call_that_was_not_allowed_frees_its_key(setup):
    asked = call(setup, "shell.exec", command="ls", idempotency_key="ask-1")
    assert asked.decision == "ask"
    again = call(setup, "shell.exec", command="ls", idempotency_key="ask-1")
    assert again.decision == "ask" and not again.replayed  # asked again, not "running"
    # The key is free: a different call may now take it.
    assert call(setup, "shell.exec", command="echo x", idempotency_key="ask-1").decision == \
        "allow"


def test_an_interrupted_call_is_refused_not_run_again(setup):
    keeper, _settings, work, _ = setup
    store = idempotency.store_for(keeper.limits_file)
    digest = idempotency.call_hash("shell.exec", {"command": PID}, str(work))
    assert store.claim("crashed", digest).owned  # a call that began and never finished
    refused = call(setup, "shell.exec", command=PID, idempotency_key="crashed")
    assert refused.decision == "deny" and "may have run" in refused.reason
    assert executions() == 0
    # Keys are forgotten after a day.
    later = idempotency.KEEP_SECONDS + 10
    import time

    assert store.claim("crashed", digest, now=time.time() + later).owned


def test_racing_threads_run_the_call_once(setup):
    slow = "sh -c 'echo $$; sleep 1'"
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: call(setup, "shell.exec", command=slow,
                                               idempotency_key="race"), range(8)))
    ran = [a for a in answers if a.decision == "allow" and not a.replayed]
    assert len(ran) == 1 and executions() == 1
    for other in answers:
        assert other is ran[0] or other.replayed or "has not finished" in other.reason


RACER = """
import json, sys
from runestone.gatekeeper import Gatekeeper
from runestone.home import layout
from runestone.tools.runner import run_tool
from runestone.tools.settings import ShellSettings, ToolSettings
keeper = Gatekeeper.from_layout(layout(), policy_file=sys.argv[1])
settings = ToolSettings(shell=ShellSettings(cwd_prefixes=(sys.argv[2],), timeout_seconds=20))
answer = run_tool(keeper, settings, "shell.exec",
                  {"command": "sh -c 'echo $$; sleep 1'", "idempotency_key": "proc-race"},
                  cwd=sys.argv[2])
print(json.dumps(answer.to_json()))
"""


def test_racing_processes_run_the_call_once(setup):
    _keeper, _settings, work, policy = setup
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(policy), str(work)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ)) for _ in range(6)]
    answers = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        answers.append(json.loads(out))
    ran = [a for a in answers if a["decision"] == "allow" and not a.get("replayed")]
    assert len(ran) == 1, answers
    assert executions() == 1
    assert all(a.get("replayed") or "has not finished" in a["reason"]
               for a in answers if a is not ran[0])


@pytest.mark.parametrize("key", ["", "x" * 201, "a\nb", 7, ["k"]])
def test_a_bad_key_is_refused(setup, key):
    answer = call(setup, "shell.exec", command="echo a", idempotency_key=key)
    assert answer.decision == "deny" and "idempotency_key" in answer.reason
    assert executions() == 0


@given(st.text(max_size=250))
def test_a_key_is_accepted_only_when_short_and_printable(text):
    printable = 1 <= len(text) <= idempotency.MAX_KEY and \
        all(ord(c) >= 0x20 and ord(c) != 0x7F for c in text)
    try:
        assert idempotency.check_key(text) == text and printable
    except idempotency.BadKey:
        assert not printable


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=4),
       st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=4))
def test_the_same_call_and_only_the_same_call_has_the_same_hash(a, b):
    assert (idempotency.call_hash("shell.exec", a, "/w") ==
            idempotency.call_hash("shell.exec", b, "/w")) == (a == b)
    assert idempotency.call_hash("shell.exec", a, "/w") != \
        idempotency.call_hash("files.write", a, "/w")
