"""The decision memo (runestone.memo): a remembered decision is given again only when a fresh
one would be the same. An attacker who can change the file system between two identical
calls (retarget a symlink, replace a directory) or the session's state must never be
answered from memory."""

from __future__ import annotations

import gc
import json
import os
import threading
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runestone.actions import Action, action_from_hook_json
from runestone.corpus import infer_home
from runestone.effects.reader import forget_readings
from runestone.facts import derive_facts
from runestone.gatekeeper import Gatekeeper, SessionState
from runestone.memo import MEMO_ACTION_BYTES, MEMO_ENTRIES, MEMO_PARTS, MEMO_SEEN
from runestone.policy import compile_policy_text, evaluate, load_preset
from runestone.shell.dialect import forget_analyses

TESTS_CORPUS = Path(__file__).parent / "corpus"


def fresh(gatekeeper: Gatekeeper, action: Action):
    """What the policy decides from the action's facts derived anew, without the memo."""
    decision = evaluate(gatekeeper.policy, derive_facts(action, home=gatekeeper.home),
                        gatekeeper.context(action))
    assert decision.action_hash == action.hash
    return decision


def remembered(gatekeeper: Gatekeeper, action: Action):
    """The decision, and whether the memo gave it (1) or not (0). The memo keeps an action
    from its second decision on, so a third is the first it can answer."""
    hits = gatekeeper._memo.hits if gatekeeper._memo else 0
    decision = gatekeeper.explain(action)
    return decision, gatekeeper._memo.hits - hits


def corpus_cases(corpus_dir: Path) -> list[tuple[Action, str]]:
    """Every call of the shared corpora (Windows' too, where it is) and the project's."""
    cases = []
    for directory in (corpus_dir, corpus_dir.parent / "corpus-windows", TESTS_CORPUS):
        for path in sorted(directory.rglob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    data = json.loads(line)
                    if "tool_name" in data:
                        cases.append((action_from_hook_json(data),
                                      infer_home(data.get("cwd", ""))))
    return cases


@pytest.mark.parametrize("preset", ["default", "developer"])
def test_every_corpus_decision_remembered_is_the_decision_made_afresh(preset, corpus_dir):
    gatekeeper = Gatekeeper(load_preset(preset), sessions=SessionState())
    cases = corpus_cases(corpus_dir)
    assert len(cases) > 500
    hits = 0
    for action, home in cases:
        gatekeeper.home = home
        for _ in range(2):
            assert gatekeeper.explain(action) == fresh(gatekeeper, action), action
        again, hit = remembered(gatekeeper, action)
        assert again == fresh(gatekeeper, action), action
        hits += hit
    # Most are remembered; the rest are larger than the memo keeps (MEMO_ACTION_BYTES,
    # MEMO_PARTS).
    assert hits > len(cases) * 0.8


@pytest.fixture
def world(tmp_path):
    """A home with a private key, and a project in it."""
    home = tmp_path / "home"
    project = home / "project"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("key\n")
    project.mkdir()
    (project / "notes.txt").write_text("notes\n")
    return home, project


def test_a_symlink_retargeted_between_two_identical_calls_is_decided_again(world):
    home, project = world
    link = project / "link"
    link.symlink_to(project / "notes.txt")
    gatekeeper = Gatekeeper(load_preset("developer"), sessions=SessionState(), home=str(home))
    action = Action("Bash", {"command": "cat link"}, str(project))
    assert gatekeeper.check(action).decision == "allow"
    assert gatekeeper.check(action).decision == "allow"
    assert remembered(gatekeeper, action) == (gatekeeper.explain(action), 1)

    link.unlink()
    link.symlink_to(home / ".ssh" / "id_rsa")
    decision, hit = remembered(gatekeeper, action)
    assert hit == 0
    assert decision.decision == "deny" and "secrets.credential-files" in decision.rules
    assert gatekeeper.check(action).decision == "deny"


def test_a_session_tainted_between_two_identical_calls_is_decided_again(tmp_path):
    gatekeeper = Gatekeeper(load_preset("developer"), sessions=SessionState(tmp_path),
                            home="/home/dev")
    curl = Action("Bash", {"command": "curl https://example.com/"}, "/home/dev/app",
                  session="s1")
    before = gatekeeper.check(curl)
    assert "net.egress-after-untrusted" not in before.rules
    # Running curl brought the network's content into the session: the same call again is
    # egress after untrusted content.
    assert gatekeeper.sessions.is_tainted("s1")
    after = gatekeeper.check(curl)
    assert after.decision == "ask" and "net.egress-after-untrusted" in after.rules


def test_the_runtimes_places_moved_by_the_environment_are_decided_again(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("RUNESTONE_HOME", str(first))
    gatekeeper = Gatekeeper(load_preset("developer"), sessions=SessionState(),
                            home=str(tmp_path))
    action = Action("Write", {"file_path": str(first / "policy.toml"), "content": "x"},
                    str(tmp_path))
    assert gatekeeper.check(action).decision == "deny"  # the governor protects itself
    monkeypatch.setenv("RUNESTONE_HOME", str(second))
    decision = gatekeeper.check(action)
    assert "self.runtime-home" not in " ".join(decision.rules)
    assert decision == fresh(gatekeeper, action)._replace(request_id=decision.request_id)
    assert decision.decision != "deny"


def test_another_home_or_project_is_decided_again():
    gatekeeper = Gatekeeper(load_preset("developer"), sessions=SessionState(), home="/home/dev")
    home_relative = Action("Bash", {"command": "rm -rf ~/build"}, "/home/dev/app")
    assert gatekeeper.explain(home_relative).decision == "ask"  # outside the project
    gatekeeper.home = "/home/dev/app/inner"
    assert gatekeeper.explain(home_relative).decision == "allow"
    parent = Action("Bash", {"command": "rm -rf ../build"}, "/home/dev/app/sub")
    assert gatekeeper.explain(parent).decision == "ask"
    within = parent._replace(project_dir="/home/dev/app")
    assert gatekeeper.explain(within).decision == "allow"
    assert gatekeeper.explain(parent).decision == "ask"


def test_other_labels_are_decided_again():
    policy = compile_policy_text("""
[policy]
default = "ask"
[[rule]]
id = "ci-agent"
decision = "allow"
program = ["ls"]
reason = "listing is fine"
[[rule]]
id = "prod"
decision = "deny"
program = ["ls"]
labels = { env = "prod" }
reason = "nothing runs in prod"
""")
    gatekeeper = Gatekeeper(policy, sessions=SessionState(), home="/home/dev",
                            labels={"env": "dev"})
    action = Action("Bash", {"command": "ls"}, "/home/dev/app")
    assert gatekeeper.explain(action).decision == "allow"
    gatekeeper.labels["env"] = "prod"
    assert gatekeeper.explain(action).decision == "deny"


def test_a_new_policy_is_never_answered_from_the_old_ones_memory():
    gatekeeper = Gatekeeper(load_preset("developer"), sessions=SessionState(), home="/home/dev")
    action = Action("Bash", {"command": "pytest -q"}, "/home/dev/app")
    assert gatekeeper.check(action).decision == "allow"
    gatekeeper.policy = load_preset("default")
    assert gatekeeper.check(action).decision == "ask"


def test_what_a_decision_leads_to_is_not_remembered(tmp_path):
    """The session id is part of the action: another session's call is its own."""
    gatekeeper = Gatekeeper(load_preset("developer"), sessions=SessionState(tmp_path),
                            home="/home/dev")
    fetch = Action("WebFetch", {"url": "https://docs.python.org/3/", "prompt": "x"},
                   "/home/dev/app", session="a")
    gatekeeper.check(fetch)
    assert gatekeeper.sessions.is_tainted("a")
    # The same call in another session is decided (and marks that session) again.
    other = fetch._replace(session="b")
    assert gatekeeper.check(other).action_hash == other.hash != fetch.hash
    assert gatekeeper.sessions.is_tainted("b")


def test_large_actions_are_not_kept_and_the_memo_is_bounded():
    gatekeeper = Gatekeeper(load_preset("developer"), sessions=SessionState(), home="/home/dev")
    long = Action("Bash", {"command": "echo " + "x" * MEMO_ACTION_BYTES}, "/home/dev/app")
    many = Action("Bash", {"command": " && ".join(["true"] * (MEMO_PARTS + 1))}, "/home/dev/app")
    fewer = Action("Bash", {"command": " && ".join(["true"] * MEMO_PARTS)}, "/home/dev/app")
    for action, kept in ((long, 0), (many, 0), (fewer, 1)):
        gatekeeper.explain(action)
        gatekeeper.explain(action)
        assert remembered(gatekeeper, action)[1] == kept, action
    for number in range(MEMO_ENTRIES + 50):
        for _ in range(2):
            gatekeeper.explain(Action("Bash", {"command": f"echo {number}"}, "/home/dev/app"))
    assert len(gatekeeper._memo._entries) == MEMO_ENTRIES
    # The oldest were forgotten first; the newest are remembered.
    last = Action("Bash", {"command": f"echo {MEMO_ENTRIES + 49}"}, "/home/dev/app")
    assert remembered(gatekeeper, last)[1] == 1
    assert remembered(gatekeeper, Action("Bash", {"command": "echo 0"}, "/home/dev/app"))[1] == 0


def test_an_action_decided_once_is_not_kept():
    """Most actions come once: their facts are not kept (only a mark that they came)."""
    gatekeeper = Gatekeeper(load_preset("developer"), sessions=SessionState(), home="/home/dev")
    for number in range(MEMO_SEEN + 10):
        gatekeeper.explain(Action("Bash", {"command": f"echo {number}"}, "/home/dev/app"))
    assert gatekeeper._memo._entries == {}
    assert len(gatekeeper._memo._seen) == MEMO_SEEN
    again = Action("Bash", {"command": f"echo {MEMO_SEEN + 9}"}, "/home/dev/app")
    assert remembered(gatekeeper, again)[1] == 0  # its second decision: now kept
    assert remembered(gatekeeper, again)[1] == 1
    first = Action("Bash", {"command": "echo 0"}, "/home/dev/app")  # its mark was forgotten
    assert remembered(gatekeeper, first)[1] == 0
    assert remembered(gatekeeper, first)[1] == 0


def test_a_full_memo_of_the_largest_kept_actions_stays_small():
    """The memory the memo holds at its bounds, as tracemalloc counts it (module docstring:
    ~22 MiB): commands of MEMO_PARTS parts naming as many paths as MEMO_ACTION_BYTES holds."""
    gatekeeper = Gatekeeper(load_preset("developer"), sessions=SessionState(), home="/home/dev")

    def command(number: int) -> str:
        return " && ".join("cp " + " ".join(f"s{number}/d{part}/f{arg}" for arg in range(8))
                           + f" o{part}/" for part in range(MEMO_PARTS))

    gatekeeper.explain(Action("Bash", {"command": command(0)}, "/home/dev/app"))
    tracemalloc.start()
    try:
        for number in range(MEMO_ENTRIES):
            for _ in range(2):
                gatekeeper.explain(Action("Bash", {"command": command(number)},
                                          "/home/dev/app"))
        forget_analyses()
        forget_readings()
        gc.collect()
        full = tracemalloc.get_traced_memory()[0]
        assert len(gatekeeper._memo._entries) == MEMO_ENTRIES
        gatekeeper.forget_decisions()
        gc.collect()
        held = full - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert 4 * 2**20 < held < 32 * 2**20


def test_threads_deciding_at_once_get_what_one_thread_gets(corpus_dir):
    gatekeeper = Gatekeeper(load_preset("developer"), sessions=SessionState(), home="/home/dev")
    actions = [action for action, _ in corpus_cases(corpus_dir)][:300]
    expected = [fresh(gatekeeper, action) for action in actions]
    failures: list[str] = []

    def work(offset: int) -> None:
        for round_ in range(3):
            for index in range(len(actions)):
                at = (index + offset * 37 + round_) % len(actions)
                if gatekeeper.explain(actions[at]) != expected[at]:
                    failures.append(f"{actions[at]}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# The attacker's view: any sequence of changes to the paths an agent names, between calls
# that are otherwise identical, and the memo still answers what a fresh decision answers.
NAMES = ("a", "b", "c")
SHAPES = ("absent", "file", "directory", "link-to-notes", "link-to-key", "link-to-etc",
          "link-to-b", "link-dangling")
ACTIONS = (
    ("Bash", {"command": "cat a"}), ("Bash", {"command": "cat a/x b"}),
    ("Bash", {"command": "rm -rf b"}), ("Bash", {"command": "cp c a/"}),
    ("Bash", {"command": "echo hi > c"}), ("Bash", {"command": "ls b/../a"}),
    ("Read", {"file_path": "a"}), ("Read", {"file_path": "b/x"}),
    ("Write", {"file_path": "c/y", "content": "z"}), ("Edit", {"file_path": "a",
                                                             "old_string": "1",
                                                             "new_string": "2"}),
)


def shape(project: Path, home: Path, name: str, form: str) -> None:
    path = project / name
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    targets = {"link-to-notes": project / "notes.txt", "link-to-key": home / ".ssh" / "id_rsa",
               "link-to-etc": Path("/etc"), "link-to-b": project / "b",
               "link-dangling": home / "nowhere"}
    if form == "file":
        path.write_text("1\n")
    elif form == "directory":
        path.mkdir()
        (path / "x").write_text("x\n")
    elif form in targets:
        path.symlink_to(targets[form])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(SHAPES)),
                      min_size=1, max_size=8),
       preset=st.sampled_from(["default", "developer"]))
def test_any_changes_between_identical_calls_are_seen(world, steps, preset):
    home, project = world
    for name in NAMES:
        shape(project, home, name, "absent")
    gatekeeper = Gatekeeper(load_preset(preset), sessions=SessionState(), home=str(home))
    actions = [Action(tool, dict(tool_input), str(project)) for tool, tool_input in ACTIONS]
    for name, form in steps:
        shape(project, home, name, form)
        for action in actions:
            assert gatekeeper.explain(action) == fresh(gatekeeper, action), (steps, action)
    assert os.path.isdir(project)
