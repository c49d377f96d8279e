"""The gatekeeper: session taint across processes, and failures that deny instead of crash."""

from __future__ import annotations

import json

import pytest

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


TEAM_POLICIES = ['[policy]\ndefault = "ask"\ninclude = ["default"]\n',
                 '[policy]\ndefault = "ask"\ninclude = ["default"]\n\n[[rule]]\n'
                 'id = "team.ls"\ndecision = "deny"\nreason = "no ls"\nprogram = ["ls"]\n']


def _cached_team_policy(text: str, signed_hash: str) -> None:
    """A cached team policy and its signed record as a pull leaves them (the signature
    itself is checked by `status`, not by a load)."""
    from runestone.home import layout
    from runestone.remote.pinned import state_file

    where = layout()
    where.state_dir.mkdir(parents=True, exist_ok=True)
    where.remote_policy_file.parent.mkdir(parents=True, exist_ok=True)
    where.remote_policy_file.write_text(text)
    state_file(where).write_text(json.dumps({"number": 1, "hash": signed_hash}))


def test_a_load_between_a_pulls_file_and_its_record_reads_them_again(isolated_home,
                                                                       monkeypatch):
    """A pull replaces the cached policy, then its record: a hook loading in between must
    not deny everything as a policy changed on disk. It reads the pair again."""
    import runestone.gatekeeper as gatekeeper_module
    from runestone.home import layout
    from runestone.policy.loader import compile_policy_text

    old, new = (compile_policy_text(text, source="test").hash for text in TEAM_POLICIES)
    _cached_team_policy(TEAM_POLICIES[1], old)  # the new file, the old record still
    pauses = []

    def record_lands(seconds: float) -> None:
        pauses.append(seconds)
        _cached_team_policy(TEAM_POLICIES[1], new)

    monkeypatch.setattr(gatekeeper_module.time, "sleep", record_lands)
    keeper = Gatekeeper.from_layout(layout())
    assert keeper.policy.hash == new and len(pauses) == 1


def test_a_cached_policy_changed_on_disk_is_still_refused(isolated_home, monkeypatch):
    import runestone.gatekeeper as gatekeeper_module
    from runestone.home import layout
    from runestone.policy import PolicyError
    from runestone.policy.loader import compile_policy_text

    signed = compile_policy_text(TEAM_POLICIES[0], source="test").hash
    _cached_team_policy(TEAM_POLICIES[1], signed)  # edited: no pull is under way
    pauses: list[float] = []
    monkeypatch.setattr(gatekeeper_module.time, "sleep", pauses.append)
    with pytest.raises(PolicyError, match="changed on disk"):
        Gatekeeper.from_layout(layout())
    assert 0 < sum(pauses) <= 0.1
