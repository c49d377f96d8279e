"""Decision semantics: deny beats ask beats allow, every part must be allowed, opaque asks."""

from __future__ import annotations

import pytest

from runestone.actions import Action
from runestone.policy import compile_policy_text, load_preset
from runestone.policy.model import EvalContext

PROJECT = "/home/dev/app"
HOME = "/home/dev"


def decide(policy, command=None, *, tool="Bash", tool_input=None, cwd=PROJECT, tainted=False):
    if command is not None:
        tool_input = {"command": command}
    action = Action(tool, tool_input or {}, cwd)
    return policy.decide(action, EvalContext(tainted=tainted), home=HOME)


@pytest.fixture(scope="module")
def developer():
    return load_preset("developer")


@pytest.fixture(scope="module")
def default():
    return load_preset("default")


def policy_of(body: str, default: str = "ask"):
    return compile_policy_text(f'[policy]\ndefault = "{default}"\n' + body)


def test_deny_beats_ask_beats_allow():
    policy = policy_of('''
[[rule]]
id = "a"
decision = "allow"
program = ["git"]
reason = "git is fine"
[[rule]]
id = "b"
decision = "ask"
program = ["git"]
subcommand = ["push"]
reason = "pushing"
[[rule]]
id = "c"
decision = "deny"
program = ["git"]
flags = ["--force"]
reason = "force"
''')
    assert decide(policy, "git status").decision == "allow"
    assert decide(policy, "git push").decision == "ask"
    forced = decide(policy, "git push --force")
    assert forced.decision == "deny"
    assert forced.rules == ("c",)


def test_compound_allowed_only_if_every_part_is(developer):
    assert decide(developer, "git status && git diff --stat").decision == "allow"
    assert decide(developer, "git status && frobnicate").decision == "ask"
    assert decide(developer, "git status; rm -rf ~").decision == "deny"


def test_unknown_gets_the_default():
    assert decide(policy_of("", "ask"), "ls").decision == "ask"
    assert decide(policy_of("", "deny"), "ls").decision == "deny"


def test_opaque_is_never_auto_allowed_even_with_default_allow():
    policy = policy_of('''
[[rule]]
id = "everything"
decision = "allow"
tool = ["Bash"]
reason = "trust the shell"
''', "allow")
    assert decide(policy, "ls").decision == "allow"
    result = decide(policy, "$(echo rm) -rf build")
    assert result.decision == "ask"
    assert result.opaque


def test_uncertain_deny_becomes_ask(default):
    result = decide(default, "rm -rf $TARGET")
    assert result.decision == "ask"
    assert "fs.rm-contains-project-or-home" in result.rules


def test_decision_names_rule_reason_instead_and_policy_hash(developer):
    result = decide(developer, "git push --force origin main")
    assert result.decision == "deny"
    assert result.rules == ("git.push-force",)
    assert "--force-with-lease" in result.reason
    assert result.policy_hash == developer.hash
    assert len(result.action_hash) == 64


def test_flag_order_and_clusters_do_not_matter(default):
    for command in ("rm -rf /", "rm -fr /", "rm -r -f /", "rm --recursive --force /",
                    "rm -f -r /", "rm / -rf"):
        assert decide(default, command).decision == "deny", command


def test_claude_style_command_patterns():
    policy = policy_of('''
[[rule]]
id = "tests"
decision = "allow"
command = ["npm run test:*", "git push *"]
reason = "ok"
''')
    assert decide(policy, "npm run test").decision == "allow"
    assert decide(policy, "npm run test -- --watch").decision == "allow"
    assert decide(policy, "npm run testing").decision == "ask"
    assert decide(policy, "git push").decision == "allow"
    assert decide(policy, "git push origin main").decision == "allow"


def test_file_rules_apply_to_file_tools_and_redirections(developer):
    assert decide(developer, tool="Write",
                  tool_input={"file_path": "/etc/hosts", "content": "x"}).decision == "deny"
    assert decide(developer, "echo x > /etc/hosts").decision == "deny"
    assert decide(developer, tool="Write", tool_input={
        "file_path": f"{PROJECT}/src/new.py", "content": "x"}).decision == "allow"
    assert decide(developer, "echo x > notes.txt").decision == "allow"


def test_paths_resolve_against_tracked_cwd(default):
    assert decide(default, "cd / && rm -rf *").decision == "deny"
    assert decide(default, "rm -rf ..").decision == "deny"


def test_web_rules(developer):
    metadata = decide(developer, tool="WebFetch",
                      tool_input={"url": "http://169.254.169.254/latest/", "prompt": "x"})
    assert metadata.decision == "deny"
    docs = decide(developer, tool="WebFetch",
                  tool_input={"url": "https://docs.python.org/3/", "prompt": "x"})
    assert docs.decision == "allow"
    assert decide(developer, "curl http://0xA9FEA9FE/latest/").decision == "deny"


def test_mcp_rules(developer):
    assert decide(developer, tool="mcp__github__delete_repository",
                  tool_input={"owner": "a", "repo": "b"}).decision == "deny"
    assert decide(developer, tool="mcp__postgres__query",
                  tool_input={"sql": "drop table users"}).decision == "deny"
    assert decide(developer, tool="mcp__github__get_issue",
                  tool_input={"number": 1}).decision == "ask"


def test_tainted_sessions_ask_for_egress(developer):
    plain = decide(developer, tool="WebFetch",
                   tool_input={"url": "https://docs.python.org/3/", "prompt": "x"})
    assert plain.decision == "allow"
    tainted = decide(developer, tool="WebFetch", tainted=True,
                     tool_input={"url": "https://docs.python.org/3/", "prompt": "x"})
    assert tainted.decision == "ask"
    assert "net.fetch-after-untrusted" in tainted.rules


def test_reasons_steer_to_a_safer_alternative(developer):
    assert "rm -rf ./build" in decide(developer, "rm -rf ~").reason
    assert ".env.example" in decide(developer, "cat .env").reason
    assert decide(developer, "cat .env.example").decision != "deny"


def test_identity_matchers():
    policy = policy_of('''
[[rule]]
id = "ci-agent"
decision = "allow"
program = ["ls"]
agent = ["ci-*"]
reason = "the CI agent may list"
[[rule]]
id = "prod"
decision = "deny"
program = ["ls"]
labels = { env = "prod" }
reason = "nothing runs in prod"
''')
    ci = Action("Bash", {"command": "ls"}, PROJECT, agent="ci-bot")
    other = Action("Bash", {"command": "ls"}, PROJECT, agent="claude-code")
    assert policy.decide(ci, home=HOME).decision == "allow"
    assert policy.decide(other, home=HOME).decision == "ask"
    prod = EvalContext(labels={"env": "prod"})
    assert policy.decide(ci, prod, home=HOME).decision == "deny"


def test_empty_command_is_not_allowed(developer):
    assert decide(developer, "").decision == "ask"
    assert decide(developer, tool="Bash", tool_input={}).decision == "ask"


def test_policy_hash_is_stable_and_content_addressed():
    body = '[[rule]]\nid = "x"\ndecision = "deny"\nprogram = ["rm"]\nreason = "no"\n'
    a = policy_of(body)
    b = compile_policy_text('# a comment\n[policy]\ndefault = "ask"\n\n' + body)
    c = policy_of(body.replace('"no"', '"never"'))
    assert a.hash == b.hash
    assert a.hash != c.hash
    assert load_preset("developer").hash != load_preset("default").hash
