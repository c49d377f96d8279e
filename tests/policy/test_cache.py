"""The policy cache changes how much a hook process parses, never what a policy says."""

from __future__ import annotations

import json

from runestone.actions import Action
from runestone.facts import derive_facts
from runestone.policy import (
    EvalContext,
    PolicyCache,
    compile_policy_text,
    evaluate,
    load_preset,
)
from runestone.policy.cache import KEEP_PARSED, KEEP_VERIFIED

POLICY = """
[policy]
name = "cached"
default = "ask"
include = ["default"]

[[rule]]
id = "local.git-status"
decision = "allow"
command = ["git status"]
reason = "Reading the work tree is harmless."
"""


def _decide(policy, command: str) -> str:
    action = Action("Bash", {"command": command}, "/tmp")
    return evaluate(policy, derive_facts(action), EvalContext()).decision


def _cache(tmp_path) -> PolicyCache:
    return PolicyCache(tmp_path / "verified", tmp_path / "parsed")


def test_a_cached_document_compiles_to_the_same_policy(tmp_path):
    fresh = compile_policy_text(POLICY, run_tests=False)
    cache = _cache(tmp_path)
    first = compile_policy_text(POLICY, run_tests=False, cache=cache)
    stored = sorted((tmp_path / "parsed").glob("*.json"))
    assert len(stored) >= 2  # the policy and the packs it includes
    second = compile_policy_text(POLICY, run_tests=False, cache=cache)
    assert fresh.hash == first.hash == second.hash
    assert _decide(second, "git status") == "allow"


def test_a_planted_entry_is_only_trusted_for_the_text_it_is_named_after(tmp_path):
    cache = _cache(tmp_path)
    compile_policy_text(POLICY, run_tests=False, cache=cache)
    other = POLICY.replace("git status", "git log")
    policy = compile_policy_text(other, run_tests=False, cache=cache)
    assert _decide(policy, "git log") == "allow"
    assert _decide(policy, "git status") == "ask"


def test_a_corrupt_or_foreign_entry_is_a_miss(tmp_path):
    cache = _cache(tmp_path)
    expected = compile_policy_text(POLICY, run_tests=False, cache=cache).hash
    entries = sorted((tmp_path / "parsed").glob("*.json"))
    entries[0].write_bytes(b"{not json")
    entries[1].write_text(json.dumps(["a", "list"]), encoding="utf-8")
    assert compile_policy_text(POLICY, run_tests=False, cache=cache).hash == expected
    assert cache.parsed("[policy]\n") is None


def test_toml_values_json_cannot_carry_are_parsed_every_time(tmp_path):
    from datetime import date

    cache = _cache(tmp_path)
    text = '[pack]\nname = "dated"\nsince = 2026-11-24\n'  # TOML reads a date here
    cache.store_parsed(text, {"pack": {"name": "dated", "since": date(2026, 11, 24)}})
    assert cache.parsed(text) is None
    assert not list((tmp_path / "parsed").glob("*"))


def test_the_cache_keeps_a_bounded_number_of_documents(tmp_path):
    cache = _cache(tmp_path)
    for number in range(KEEP_PARSED + 10):
        cache.store_parsed(f"# document {number}\n", {"n": number})
    assert len(list((tmp_path / "parsed").glob("*.json"))) == KEEP_PARSED


def test_tests_that_passed_are_remembered_per_version(tmp_path):
    cache = _cache(tmp_path)
    policy = load_preset("default", cache=cache)
    assert cache.is_verified(policy.hash)
    assert not cache.is_verified("0" * 64)


def test_the_cache_remembers_a_bounded_number_of_passed_policies(tmp_path):
    """A policy edited (or pulled) many times leaves the newest KEEP_VERIFIED hashes, once
    each, the newest still remembered."""
    cache = _cache(tmp_path)
    hashes = [f"{number:064x}" for number in range(KEEP_VERIFIED + 10)]
    for policy_hash in hashes:
        cache.mark_verified(policy_hash)
    cache.mark_verified(hashes[-1])  # again: not twice in the file
    lines = (tmp_path / "verified").read_text().splitlines()
    assert len(lines) == KEEP_VERIFIED == len(set(lines))
    assert all(cache.is_verified(h) for h in hashes[-KEEP_VERIFIED:])
    assert not cache.is_verified(hashes[0])
    assert list(tmp_path.glob("*.tmp")) == []


def test_only_documents_that_compiled_are_kept(tmp_path):
    """A cached document's regexes compile on first use, trusted because the document
    compiled before: so a document that did not compile must never be kept."""
    import pytest

    from runestone.policy import PolicyError

    cache = _cache(tmp_path)
    broken = POLICY + '\n[[rule]]\nid = "local.bad"\ndecision = "deny"\nreason = "x"\n' \
                      'text = "(unclosed"\n'
    for _ in range(2):  # refused the second time too: nothing was cached to trust
        with pytest.raises(PolicyError, match="not a valid regular expression"):
            compile_policy_text(broken, run_tests=False, cache=cache)
    assert cache.parsed(broken) is None


def test_regexes_of_a_cached_document_decide_as_compiled_ones(tmp_path):
    text = POLICY + '\n[[rule]]\nid = "local.no-force"\ndecision = "deny"\n' \
                    'reason = "No force pushes."\ntool = ["Bash"]\n' \
                    'arguments = { command = "^git push.*(--force|-f\\\\b)" }\n'
    cache = _cache(tmp_path)
    fresh = compile_policy_text(text, run_tests=False, cache=cache)
    cached = compile_policy_text(text, run_tests=False, cache=cache)
    assert cache.parsed(text) is not None
    for command in ("git push --force origin", "git push -f", "git push origin", "git status"):
        assert _decide(fresh, command) == _decide(cached, command), command
    assert _decide(cached, "git push --force origin") == "deny"
