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

    monkeypatch.setattr("runestone.memo.derive_facts", explode)
    decision = gatekeeper.check(Action("Bash", {"command": "ls"}, PROJECT))
    assert decision.decision == "deny"
    assert "Internal error" in decision.reason and "boom" in decision.reason


def test_approvals_made_on_first_use_are_made_once_for_every_thread():
    """Threads asking at once all get the one service; none reads "no approvals" meanwhile."""
    import threading
    import time

    made: list[object] = []

    def factory() -> object:
        time.sleep(0.2)
        made.append(object())
        return made[-1]

    keeper = Gatekeeper(load_preset("default"), approvals_factory=factory)  # type: ignore[arg-type]
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(keeper.approvals))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and seen == [made[0]] * 8


def test_approvals_that_cannot_be_made_mean_a_host_that_cannot_ask_is_denied():
    keeper = Gatekeeper(load_preset("default"), approvals_factory=lambda: None,
                        approval_mode="defer")
    decision = keeper.check(Action("Bash", {"command": "frobnicate --all"}, PROJECT))
    assert decision.decision == "deny" and "approvals" in decision.reason
