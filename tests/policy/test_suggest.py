"""Learning rules from approvals: `policy suggest` on a generated audit log (proposals, the
asks each saves, the replay), the rule offered for one approval, and saving it."""

from __future__ import annotations

import random
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runestone.actions import Action
from runestone.approvals.service import Approvals, ApprovalSettings
from runestone.audit.query import read_entries
from runestone.facts import derive_facts
from runestone.gatekeeper import Gatekeeper, open_audit_log
from runestone.home import layout
from runestone.identity import create_identity
from runestone.integrations.hook import handle_hook
from runestone.integrations.hosts import ClaudeCode
from runestone.integrations.links import CallLinks
from runestone.policy import EvalContext, compile_policy_text, evaluate, load_preset
from runestone.policy.learn import NEVER_LEARNED, finish, learn_rule, to_toml
from runestone.policy.suggest import (
    Proposal,
    pack_deny_examples,
    read_history,
    replay,
    suggest,
)

HOME = "/home/dev"
PROJECT = "/home/dev/app"
DEVELOPER = '[policy]\nname = "team"\ndefault = "ask"\ninclude = ["developer"]\n'


@pytest.fixture
def runtime(isolated_home):
    where = layout()
    create_identity(where)
    audit = open_audit_log(where)
    approvals = Approvals(where, audit=audit, settings=ApprovalSettings(ttl_seconds=600))
    policy = compile_policy_text(DEVELOPER, source="team.toml")
    yield where, audit, approvals, policy
    approvals.close()
    audit.close()


def bash(command: str, session: str = "s1") -> Action:
    return Action("Bash", {"command": command}, PROJECT, session=session, agent="claude-code")


def generate_log(runtime, seed: int = 7) -> dict[str, int]:
    """A log as real work writes it: asks approved on the page/CLI (defer flow) and in the
    host's own prompt (ask + PostToolUse), asks denied or left pending, pack denies, opaque
    and rule-asked actions a human approved anyway. Returns what was generated."""
    where, audit, approvals, policy = runtime
    rng = random.Random(seed)
    deferring = Gatekeeper(policy, audit=audit, approvals=approvals, approval_mode="defer",
                           home=HOME)
    counts = {"asks": 0, "approved": 0}

    def ask_and(command: str, verdict: str) -> str:
        action = bash(command, session=f"s{rng.randrange(3)}")
        decision = deferring.check(action)
        request_id = dict(decision.approval)["request"]
        counts["asks"] += 1
        if verdict == "approve":
            counts["approved"] += 1
            approvals.decide(request_id, approve=True, approver=rng.choice(["ana", "bo"]))
            assert deferring.check(action).decision == "allow"  # the approved retry
        elif verdict == "deny":
            approvals.decide(request_id, approve=False, approver="cy", reason="not that one")
        return request_id

    caches = rng.sample(["pip", "npm", "go-build", "uv", "ruff", "mypy"], k=4)
    for name in caches:
        ask_and(f"du -sh ~/.cache/{name}", "approve")
    for package in ("requests", "rich"):
        ask_and(f"pip install {package}", "approve")
    ask_and("pip install left-pad-evil", "deny")
    ask_and("ls /opt/tools/bin", "pending")
    ask_and("$(echo ls) /opt/x", "approve")  # opaque: never learned
    ask_and("git push origin main", "approve")  # a pack asks: an allow rule changes nothing

    # The host asks its own user, who lets it run: PreToolUse answers ask, PostToolUse
    # follows with the same tool_use_id.
    asking = Gatekeeper(policy, audit=audit, approvals=approvals, approval_mode="ask",
                        home=HOME)
    links = CallLinks(where.state_dir / "links")
    for index, note in enumerate(rng.sample(["todo", "ideas", "log", "plan"], k=3)):
        body = {"hook_event_name": "PreToolUse", "tool_name": "Bash", "cwd": PROJECT,
                "session_id": "h1", "tool_use_id": f"toolu_{index}",
                "tool_input": {"command": f"cat ~/notes/{note}.md"}}
        import json

        reply = handle_hook(asking, ClaudeCode(), json.dumps(body), links)
        assert "\"ask\"" in reply.stdout
        counts["asks"] += 1
        counts["approved"] += 1
        body.update(hook_event_name="PostToolUse", tool_response={"stdout": "x"})
        handle_hook(asking, ClaudeCode(), json.dumps(body), links)

    for command in ("cat ~/.ssh/id_rsa", "rm -rf ~", "cat ~/notes/.env"):  # packs deny
        assert deferring.check(bash(command)).decision == "deny"
    counts["caches"] = len(caches)
    return counts


def test_suggest_on_a_generated_log(runtime):
    where, _audit, _approvals, policy = runtime
    counts = generate_log(runtime)
    history = read_history(read_entries(where.audit_dir), "rt_1")
    result = suggest(history, policy, home=HOME)
    assert result.asks == counts["asks"] and result.approved == counts["approved"]

    by_id = {p.id: p for p in result.proposals}
    assert set(by_id) == {"learned.du", "learned.pip-install", "learned.cat"}, by_id

    du = by_id["learned.du"]
    assert du.rule["path"] == ["~/.cache/**"] and du.rule["effects"] == ["list"]
    assert du.rule["project"] == [PROJECT] and du.approvals == counts["caches"]
    assert du.saved == counts["caches"] and du.approvers <= {"ana", "bo"}

    pip = by_id["learned.pip-install"]
    assert pip.rule["subcommand"] == ["install"] and pip.approvals == 2
    assert pip.saved == 3  # the two approved and the one a human denied
    assert pip.newly_allowed[0]["human_denied"] and pip.newly_allowed[0]["denied_by"] == ["cy"]
    assert "left-pad-evil" in pip.newly_allowed[0]["summary"]

    cat = by_id["learned.cat"]  # from the host's own prompt
    assert cat.rule["path"] == ["~/notes/**"] and cat.saved == 3
    assert cat.approvers == {"claude-code user"}

    reasons = " | ".join(n["reason"] for n in result.not_learned)
    assert "not fully understood" in reasons and "git.push asks about it" in reasons

    # The replay: nothing the packs deny and nothing opaque becomes allowed, checked here
    # independently by compiling the rules' own TOML into the policy.
    for proposal in result.proposals:
        assert proposal.conflicts == []
        assert tomllib.loads(proposal.toml())["rule"][0] == proposal.rule
    text = DEVELOPER + "\n" + "\n".join(p.toml() for p in result.proposals)
    candidate = compile_policy_text(text, source="team.toml")
    for action, summary, _logged in history.actions.values():
        facts = derive_facts(action, home=HOME)
        before = evaluate(policy, facts, EvalContext()).decision
        after = evaluate(candidate, derive_facts(action, home=HOME), EvalContext()).decision
        if before == "deny":
            assert after == "deny", summary
        if facts.opaque:
            assert after != "allow", summary
    for example in pack_deny_examples(policy):
        assert candidate.decide(example, home="/home/user").decision == "deny"

    # Thresholds: at least two approvals, at least two people.
    fewer = suggest(history, policy, home=HOME, min_approvals=4)
    assert {p.id for p in fewer.proposals} == {"learned.du"}
    people = suggest(history, policy, home=HOME, min_people=2)
    assert "learned.cat" not in {p.id for p in people.proposals}


def test_a_rule_that_reopens_what_the_policy_denies_is_refused(runtime):
    """Under `default = "deny"` an allow rule does let things through: the replay refuses
    it and names what it would reopen."""
    where, audit, _approvals, _policy = runtime
    strict = compile_policy_text('[policy]\ndefault = "deny"\ninclude = ["developer"]\n',
                                 source="strict.toml")
    Gatekeeper(strict, audit=audit, home=HOME).check(bash("du -sh /srv/data"))
    history = read_history(read_entries(where.audit_dir))
    proposal = Proposal(rule=finish({"program": ["du"], "effects": ["list"],
                                     "path": ["/srv/data/**"], "project": [PROJECT]}, set()))
    replay(proposal, history, strict, home=HOME)
    assert proposal.refused
    assert "the policy's default (deny)" in proposal.conflicts[0]["why"]
    replay(loose := Proposal(rule=dict(proposal.rule)), history,
           compile_policy_text(DEVELOPER, source="team.toml"), home=HOME)
    assert not loose.refused and loose.newly_allowed


@pytest.mark.parametrize(("command", "why"), [
    ("cat ~/.aws/credentials", "denies it"),
    ("python -c 'print(1)'", "asks about it"),
    ("eval \"$X\"", "not fully understood"),
    ("frobnicate --all", "not understood"),
    ("ls /etc", "top-level directory"),
    ("cat $SOMEFILE", "might deny it"),
    ("ls -la", "already allows"),
])
def test_no_rule_is_offered_where_none_is_safe(command, why):
    learned = learn_rule(load_preset("developer"), bash(command), home=HOME)
    assert learned.rules == () and why in learned.refused


COMMANDS = st.sampled_from([
    "cat", "ls -la", "du -sh", "head -n 5", "wc -l", "grep -rn TODO", "rm", "rm -rf",
    "mkdir -p", "touch", "cp -r", "chmod 600", "tar -czf /tmp/out.tgz", "find", "stat",
    "pip install", "npm install", "curl -s", "git log", "sed -i s/a/b/", "shred -u",
    "python", "bash", "sudo cat", "ln -s", "dd if=/dev/zero of=",
])
TARGETS = st.sampled_from([
    "~/notes/a.md", "~/.cache/pip", "/opt/tools/x", "/etc/hosts", "/srv/data/f.csv", "src/x",
    "/tmp/z", "~/.ssh/id_rsa", "~/.aws/credentials", "/", "~", "$HOME/x", "~/*", ".env",
    "https://api.github.com/x", "requests", "/dev/sda", "~/.bashrc", "/usr/share/dict/words",
    "../other/x", "~/work/*.txt",
])
PACK_DENIES = None


def _pack_denies():
    global PACK_DENIES
    if PACK_DENIES is None:
        PACK_DENIES = pack_deny_examples(load_preset("developer"))
    return PACK_DENIES


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(COMMANDS, st.lists(TARGETS, min_size=1, max_size=2))
def test_a_learned_rule_allows_what_was_approved_and_nothing_denied(command, targets):
    """Whatever a human approves, the rule offered (a) allows that action, (b) never runs
    code it cannot read, and (c) once in the policy, leaves every deny of the packs' own
    examples a deny and every opaque action unallowed."""
    policy = load_preset("developer")
    action = bash(f"{command} {' '.join(targets)}")
    learned = learn_rule(policy, action, home=HOME)
    if not learned.rules:
        assert learned.refused
        return
    rules = [finish(table, {r.id for r in policy.rules}) for table in learned.rules]
    for index, rule in enumerate(rules):
        rule["id"] = f"{rule['id']}-{index}"
        assert not set(rule.get("effects", [])) & NEVER_LEARNED
    text = DEVELOPER + "\n" + "\n".join(to_toml(rule) for rule in rules)
    candidate = compile_policy_text(text, source="team.toml", run_tests=False)
    assert candidate.decide(action, home=HOME).decision == "allow", text
    moved = compile_policy_text(text.replace(f'"{PROJECT}"', '"/home/user/project"'),
                                source="team.toml", run_tests=False)
    for example in _pack_denies():
        assert moved.decide(example, home="/home/user").decision == "deny", example
    assert moved.decide(bash(f"$(echo {command}) {targets[0]}"),
                        home=HOME).decision != "allow"
