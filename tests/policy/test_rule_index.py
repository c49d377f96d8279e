"""The rule index (policy.index: gates; policy.path_index: path rules by what their globs
name) skips only rules that could not have fired: every decision is the one trying every
rule gives, and a plain command is tried against few rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.actions import Action
from runestone.facts import derive_facts
from runestone.policy import load_preset
from runestone.policy.engine import CompiledPolicy, evaluate
from runestone.policy.index import gate_of
from runestone.policy.model import EvalContext

PROJECT = "/home/dev/project"
HOME = "/home/dev"
# Projects a daemon or a batch moves between: an index of path rules built in one serves
# the others only when none of its globs reads the project (path_index._index_for).
PROJECTS = (PROJECT, "/srv/other", "/home/dev/project/sub", "/home/dev", "C:\\Users\\dev\\app")


class TryEveryRule(CompiledPolicy):
    """The same policy, trying every rule of a part's kind and program (no gates)."""

    __slots__ = ()

    def candidates(self, part, facts=None, ctx=None):
        return super().candidates(part)


def every_rule(policy: CompiledPolicy) -> CompiledPolicy:
    copy = TryEveryRule.__new__(TryEveryRule)
    for name in CompiledPolicy.__slots__:
        setattr(copy, name, getattr(policy, name))
    return copy


POLICIES = {name: load_preset(name) for name in ("default", "developer")}
REFERENCES = {name: every_rule(policy) for name, policy in POLICIES.items()}

programs = st.sampled_from([
    "cat", "rm", "rm -rf", "cp", "mv", "ls", "git push --force", "git status", "curl", "wget",
    "python -c 'import os'", "node -e 1", "bash -c", "sudo", "ssh host", "dd of=", "tee",
    "chmod 777", "mkfs.ext4", "shutdown -h now", "at now", "npm publish", "grep -r x",
    "find . -delete", "tar xf", "scp", "unknowntool", "echo", "kubectl delete",
])
paths = st.sampled_from([
    "src/main.py", "~/.ssh/id_rsa", "~/.ssh/id_rsa.pub", ".env", ".env.example", "/dev/sda",
    "/dev/tcp/1.2.3.4/80", "/etc/passwd", "/etc/shadow", "~/.bashrc", "../../.aws/credentials",
    "$HOME/.kube/config", "secrets.yaml", "*.pem", "src/*.json", "/proc/self/environ",
    ".git", "/", "~", "key.pem", "$X", "~/.claude/settings.json", "C:\\Windows\\x",
    "https://example.com/x", "http://169.254.169.254/latest", "file:///etc/passwd",
    "ftp://h/x", "http://127.0.0.1:8080",
])
# Paths built from directories and names the packs' globs name (literal, under a
# directory, base-name suffix or prefix, or a regex under a literal directory), and others.
built_paths = st.builds(
    lambda directory, name: directory + name,
    st.sampled_from(["", "src/", "~/", "~/.ssh/", "/proc/1/", "/proc/self/", "/dev/", "/etc/",
                     "~/.config/gcloud/", ".git/hooks/", "~/.aws/", "../", "/tmp/x/",
                     "~/.local/state/runestone/", "~/.claude/", ".claude/", "/usr/lib/"]),
    st.sampled_from(["id_rsa", "id_ed25519.pub", "x_key", "a.pem", ".env", ".env.local",
                     ".env.example", "secrets.yaml", "service-account-1.json", "environ",
                     "cmdline", "sda1", "tcp", "config", "authorized_keys2", "settings.json",
                     "settings.local.json", "x.py", "credentials", "runestone", "audit"]))
paths = st.one_of(paths, built_paths)
commands = st.lists(st.tuples(programs, st.lists(paths, max_size=3)), min_size=1,
                    max_size=3).map(lambda parts: " && ".join(
                        " ".join([program, *args]) for program, args in parts))
tools = st.one_of(
    commands.map(lambda c: ("Bash", {"command": c})),
    commands.map(lambda c: ("Bash", {"command": c + " > ~/.bashrc"})),
    paths.map(lambda p: ("Read", {"file_path": p})),
    paths.map(lambda p: ("Write", {"file_path": p, "content": "x"})),
    paths.map(lambda p: ("Edit", {"file_path": p, "old_string": "a", "new_string": "b"})),
    paths.map(lambda p: ("WebFetch", {"url": p, "prompt": "x"})),
    paths.map(lambda p: ("mcp__fs__read_file", {"path": p})),
    st.just(("mcp__db__query", {"sql": "DROP TABLE users"})),
    st.just(("Task", {"prompt": "x"})),
)


def outcome(decision) -> tuple:
    return (decision.to_json(), decision.severity, decision.explained,
            tuple((h.rule.id, h.part_label, h.certain) for h in decision.hits))


@settings(max_examples=600, deadline=None)
@given(tools, st.sampled_from(sorted(POLICIES)), st.booleans(), st.sampled_from(PROJECTS))
def test_the_index_decides_as_trying_every_rule(call, preset, tainted, project) -> None:
    """The policies (and their indexes) live across examples, so an index built in one
    project is met again in the others."""
    tool, tool_input = call
    action = Action(tool, tool_input, project)
    ctx = EvalContext(tainted=tainted)
    indexed = evaluate(POLICIES[preset], derive_facts(action, home=HOME), ctx)
    reference = evaluate(REFERENCES[preset], derive_facts(action, home=HOME), ctx)
    assert outcome(indexed) == outcome(reference)


def test_a_command_naming_no_path_or_url_skips_the_path_and_url_rules() -> None:
    policy = POLICIES["default"]
    facts = derive_facts(Action("Bash", {"command": "echo hello"}, PROJECT), home=HOME)
    (part,) = facts.parts
    tried = policy.candidates(part, facts, EvalContext())
    everything = REFERENCES["default"].candidates(part, facts, EvalContext())
    assert len(tried) < len(everything)
    for rule in tried:
        gate = rule.gate
        assert gate is not None and not gate.needs_path and not gate.needs_url


def test_gates_state_only_what_the_matchers_require() -> None:
    assert gate_of({"decision": "deny", "path": ["/x"], "access": ["read"]}).needs_path
    # An allow rule's path matchers hold vacuously on a command naming no path.
    assert not gate_of({"decision": "allow", "program": ["ls"], "path": ["/x"]}).needs_path
    assert gate_of({"decision": "ask", "scheme": ["ftp"]}).needs_url
    assert gate_of({"decision": "ask", "code": True}).needs_code
    assert not gate_of({"decision": "ask", "code": False}).needs_code
    assert gate_of({"decision": "ask", "tainted": True}).tainted is True


@settings(max_examples=300, deadline=None)
@given(tools, st.sampled_from(sorted(POLICIES)), st.booleans(), st.sampled_from([HOME, "/root"]))
def test_remembered_command_answers_decide_as_fresh_ones(call, preset, tainted, home) -> None:
    """A command-only rule's answer is remembered per command (policy.engine): deciding
    with the answers of earlier decisions gives what deciding from scratch gives."""
    tool, tool_input = call
    action = Action(tool, tool_input, PROJECT)
    ctx = EvalContext(tainted=tainted)
    warm = evaluate(POLICIES[preset], derive_facts(action, home=home), ctx)
    again = evaluate(POLICIES[preset], derive_facts(action, home=home), ctx)
    POLICIES[preset]._answers.clear()
    fresh = evaluate(POLICIES[preset], derive_facts(action, home=home), ctx)
    assert outcome(warm) == outcome(again) == outcome(fresh)


def test_only_rules_of_command_fields_alone_are_command_only() -> None:
    from runestone.policy.rules import compile_rule

    def rule(**fields):
        return compile_rule({"id": "r", "decision": "ask", "reason": "x", **fields}, "test")

    assert rule(program=["git"], subcommand=["push"], flags=["--force"]).command_only
    assert rule(command=["shutdown*"]).command_only
    assert not rule(program=["rm"], path_contains=["{project}"]).command_only
    assert not rule(program=["curl"], tainted=True).command_only
    assert not rule(program=["git"], project=["/home/dev/app"]).command_only
    assert not rule(path=["/etc/**"]).command_only


def test_the_path_forms_a_policys_indexes_remember_are_bounded(monkeypatch) -> None:
    """A long-lived daemon meets ever new paths: past the bound, a form is looked up each
    time instead of remembered, and decides the same."""
    from runestone.policy import path_index

    monkeypatch.setattr(path_index, "_FORMS_KEPT_IN_ALL", 3)
    policy = load_preset("developer")  # its own indexes, counted from the patched bound
    reference = REFERENCES["developer"]
    for n in range(12):
        action = Action("Bash", {"command": f"cat ~/.ssh/id_{n} src/file{n}.py"}, PROJECT)
        facts, ctx = derive_facts(action, home=HOME), EvalContext()
        assert outcome(evaluate(policy, facts, ctx)) == outcome(evaluate(reference, facts, ctx))
    indexes = policy._path_indexes
    assert indexes and indexes.forms_left == 0
    assert sum(len(index._possible) for index in indexes.values()) == 3


def test_an_index_reading_the_project_is_not_shared_with_another_project() -> None:
    """`./deploy/**` names a different directory in each project: an index built in one
    project must not answer for the other (a deny missed, or a wrong one), while an index
    of globs that name no project is built once for both."""
    from runestone.policy.loader import compile_policy_text

    policy = compile_policy_text("""
[policy]
default = "allow"

[[rule]]
id = "t.deploy"
decision = "deny"
reason = "the project's deploy keys"
program = ["rm"]
path = ["./deploy/**"]

[[rule]]
id = "t.ssh"
decision = "deny"
reason = "ssh keys"
path = ["~/.ssh/**"]
""", source="test")

    def decided(command: str, project: str) -> str:
        action = Action("Bash", {"command": command}, project)
        return evaluate(policy, derive_facts(action, home=HOME), EvalContext()).decision

    for project in ("/srv/a", "/srv/b"):
        assert decided(f"rm {project}/deploy/key", project) == "deny"
        assert decided("rm /srv/a/deploy/key", project) == ("deny" if project == "/srv/a"
                                                            else "allow")
        assert decided("cat ~/.ssh/id_rsa", project) == "deny"
        assert decided("cat deploy/key", project) == "allow"
    # Each candidate set has one index of the globs naming no project, for both projects;
    # rm's, which holds `./deploy/**`, also one per project.
    kept = sorted(key[0] for key in policy._path_indexes)
    assert kept.count("") == len(kept) - 2 and kept.count("/srv/a") == kept.count("/srv/b") == 1


def test_a_new_project_files_only_the_globs_that_read_it() -> None:
    """A rule with globs of both kinds is in both indexes, each with its own globs: a new
    project expands the few that read it, not the rule's every glob again."""
    from runestone.policy.loader import compile_policy_text

    policy = compile_policy_text("""
[policy]
default = "allow"

[[rule]]
id = "t.hooks"
decision = "deny"
reason = "persistence"
path = ["./.git/hooks/**", "~/.bashrc", "/etc/profile.d/**", "**/.envrc"]
""", source="test")

    def decided(command: str) -> str:
        action = Action("Bash", {"command": command}, "/srv/a")
        return evaluate(policy, derive_facts(action, home=HOME), EvalContext()).decision

    assert decided("touch /srv/a/.git/hooks/pre-commit") == "deny"
    assert decided("touch ~/.bashrc") == "deny"
    assert decided("touch /srv/a/.envrc") == "deny"
    assert decided("touch /srv/b/.git/hooks/pre-commit") == "allow"
    own = [index for key, index in policy._path_indexes.items() if key[0] == "/srv/a"]
    assert own and all(set(index.exact) | set(index.under) <= {
        "/srv/a/.git/hooks", "/srv/a/.git/hooks/"} and not index.names for index in own)
