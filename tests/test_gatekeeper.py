"""The gatekeeper: session taint across processes, and failures that deny instead of crash."""

from __future__ import annotations

from runestone.actions import Action
from runestone.gatekeeper import Gatekeeper, SessionState
from runestone.policy import load_preset

PROJECT = "/home/dev/app"


def fetch(session: str) -> Action:
    return Action("WebFetch", {"url": "https://docs.python.org/3/", "prompt": "x"}, PROJECT,
                  session=session)


def curl(session: str) -> Action:
    return Action("Bash", {"command": "curl https://example.com/"}, PROJECT, session=session)


def test_reading_untrusted_content_taints_the_session_across_processes(tmp_path):
    policy = load_preset("developer")
    first = Gatekeeper(policy, sessions=SessionState(tmp_path), home="/home/dev")
    assert "net.egress-after-untrusted" not in first.check(curl("s1")).rules
    assert first.check(fetch("s2")).decision == "allow"
    # A later hook process sees the mark left by the first one.
    second = Gatekeeper(policy, sessions=SessionState(tmp_path), home="/home/dev")
    decision = second.check(curl("s2"))
    assert decision.decision == "ask"
    assert "net.egress-after-untrusted" in decision.rules
    assert "net.egress-after-untrusted" not in second.check(curl("s3")).rules


def test_reading_outside_the_project_taints(tmp_path):
    gatekeeper = Gatekeeper(load_preset("developer"), sessions=SessionState(tmp_path))
    gatekeeper.check(Action("Read", {"file_path": "/tmp/download.html"}, PROJECT, session="s"))
    assert gatekeeper.sessions.is_tainted("s")
    gatekeeper.check(Action("Read", {"file_path": f"{PROJECT}/a.py"}, PROJECT, session="t"))
    assert not gatekeeper.sessions.is_tainted("t")


def test_an_internal_error_is_a_deny_that_says_so(monkeypatch):
    gatekeeper = Gatekeeper(load_preset("default"))

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("runestone.gatekeeper.derive_facts", explode)
    decision = gatekeeper.check(Action("Bash", {"command": "ls"}, PROJECT))
    assert decision.decision == "deny"
    assert "Internal error" in decision.reason and "boom" in decision.reason
