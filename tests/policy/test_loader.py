"""Loading refuses every broken policy whole, and says where the mistake is."""

from __future__ import annotations

import pytest

from runestone.policy import (
    PolicyError,
    PolicyTestFailure,
    builtin_packs,
    compile_policy_text,
    load_policy,
    load_preset,
)
from runestone.policy.selftest import run_policy_tests

GOOD_RULE = '''
[[rule]]
id = "no-rm"
decision = "deny"
program = ["rm"]
reason = "no deleting"
'''


def refuse(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        compile_policy_text(text, source="p.toml")
    return info.value


def test_toml_syntax_error_points_at_the_line():
    error = refuse('[policy]\ndefault = "ask"\n\n[[rule]]\nid = "x\n')
    assert error.line == 5
    assert "p.toml:5" in str(error)


def test_unknown_field_points_at_its_line():
    text = ('[policy]\n' + GOOD_RULE
            + '\n[[rule]]\nid = "b"\ndecision = "ask"\nreason = "r"\nprogam = ["x"]\n')
    error = refuse(text)
    assert error.field == "progam"
    assert error.line == text.splitlines().index('progam = ["x"]') + 1


def test_bad_decision_and_bad_regex_are_located():
    text = '[policy]\n[[rule]]\nid = "a"\ndecision = "maybe"\nreason = "r"\nprogram = "x"\n'
    error = refuse(text)
    assert error.line == 4 and error.field == "decision"
    text = '[policy]\n[[rule]]\nid = "a"\ndecision = "deny"\nreason = "r"\ntext = "(unclosed"\n'
    error = refuse(text)
    assert error.line == 6 and "regular expression" in error.message


@pytest.mark.parametrize("text,needle", [
    ('[policy]\ndefault = "yes"\n', "default must be"),
    ('[policy]\ninclude = ["no-such-pack"]\n', "unknown pack"),
    ('[policy]\ndisable = ["nope"]\n', "which no included pack defines"),
    ('[policy]\n' + GOOD_RULE + GOOD_RULE, "defined twice"),
    ('[policy]\n[[rule]]\nid = "a"\ndecision = "deny"\n', "has no 'reason'"),
    ('[policy]\nsurprise = 1\n', "unknown key"),
    ('[polcy]\n', "unknown top-level key"),
    ('[policy]\n[[rule]]\nid = "a b"\ndecision = "deny"\nreason = "r"\n', "rule id"),
    ('[policy]\n[[rule]]\nid = "a"\ndecision = "deny"\nreason = "r"\npath = ["/x"]\n'
     'domain = ["x.com"]\n', "mixes path and URL"),
    ('[policy]\n[[test]]\ncommand = "ls"\n', "needs 'expect'"),
    ('[policy]\n[[rule]]\nid = "a"\ndecision = "deny"\nreason = "r"\npath = ["~/.ssh/[z-a]*"]\n',
     "'path' glob '~/.ssh/[z-a]*' cannot be read"),
    ('[policy]\n[[rule]]\nid = "a"\ndecision = "deny"\nreason = "r"\npath = ["/x/**"]\n'
     'path_except = ["/x/[b-a]"]\n', "'path_except' glob"),
])
def test_mistakes_are_refused_with_a_clear_message(text, needle):
    assert needle in str(refuse(text))


def test_failing_examples_refuse_the_policy():
    text = '[policy]\n' + GOOD_RULE + 'match = ["ls -la"]\nnot_match = ["rm x"]\n'
    with pytest.raises(PolicyTestFailure) as info:
        compile_policy_text(text, source="p.toml")
    assert len(info.value.failures) == 2
    assert "p.toml:3" in info.value.failures[0]


def test_failing_test_case_refuses_the_policy():
    text = '[policy]\n' + GOOD_RULE + '\n[[test]]\ncommand = "rm x"\nexpect = "allow"\n'
    with pytest.raises(PolicyTestFailure) as info:
        compile_policy_text(text)
    assert "expected allow, got deny" in str(info.value)


def test_unreadable_policy_file_is_an_error_not_an_empty_policy(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe[policy]")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(bad)


def test_include_cycles_and_files(tmp_path):
    (tmp_path / "a.toml").write_text('[pack]\ninclude = ["b.toml"]\n')
    (tmp_path / "b.toml").write_text('[pack]\ninclude = ["a.toml"]\n')
    (tmp_path / "main.toml").write_text('[policy]\ninclude = ["a.toml"]\n')
    with pytest.raises(PolicyError, match="include cycle"):
        load_policy(tmp_path / "main.toml")


def test_disable_removes_a_pack_rule():
    policy = compile_policy_text('[policy]\ninclude = ["git-history"]\ndisable = ["git.push"]\n')
    assert "git.push" not in {rule.id for rule in policy.rules}
    assert policy.hash != compile_policy_text('[policy]\ninclude = ["git-history"]\n').hash


@pytest.mark.parametrize("name", ["default", "developer"])
def test_presets_pass_their_own_tests(name):
    policy = load_preset(name, run_tests=False)
    results = run_policy_tests(policy)
    failed = [f"{r.location} {r.name}: {r.detail}" for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert len(results) > 100


def test_every_pack_loads_alone():
    for name in builtin_packs():
        policy = compile_policy_text(f'[policy]\ninclude = ["{name}"]\n', source=name)
        assert policy.rules, name


def test_starter_policy_loads_and_passes(tmp_path):
    from importlib import resources

    text = (resources.files("runestone.policy") / "starter.toml").read_text("utf-8")
    policy = compile_policy_text(text, source="starter.toml")
    assert policy.default == "ask"
