"""The shortcuts a cold hook takes instead of compiling regexes answer exactly as the regexes.

An attacker shapes the command line; a shortcut that disagrees with the pattern it stands
for is an allow rule that fires too often or a deny rule that misses. So each is checked
against the regular expression it replaces, on lines built to sit at the edges: a prefix
followed by every kind of whitespace, by a non-space, or by nothing.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.policy.globs import CommandPatterns, command_pattern_source
from runestone.policy.rules import _word_matches

ALPHABET = st.sampled_from([*"ab :-*?[]!.x", "\t", "\n", "\x0b", "\x1c", "\u2028", "\u00a0",
                            "\u3000"])
words = st.text(ALPHABET, max_size=6)
patterns = st.lists(words.map(lambda w: w.strip() or "a"), min_size=1, max_size=4)
patterns = st.one_of(
    patterns,
    patterns.map(lambda ps: [p + " *" for p in ps]),
    patterns.map(lambda ps: [p + ":*" for p in ps]),
    patterns.map(lambda ps: [f"{ps[0]} *", *ps[1:]]),
    patterns.map(lambda ps: [f"{ps[0]}*", *ps[1:]]),
)


def _regex(pattern_list: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{command_pattern_source(p)})" for p in pattern_list),
                      re.DOTALL)


@settings(max_examples=600)
@given(patterns, st.lists(words, max_size=4), st.data())
def test_command_patterns_answer_as_their_regex(pattern_list, tails, data):
    matcher, regex = CommandPatterns(pattern_list), _regex(pattern_list)
    lines = ["".join(tails)]
    for pattern in pattern_list:
        stem = pattern.strip().removesuffix(":*").removesuffix(" *")
        lines += [stem, stem + "".join(tails), stem + " " + "".join(tails)]
        lines.append(stem + data.draw(ALPHABET) + "".join(tails))
    for line in lines:
        assert matcher.fullmatch(line) == (regex.fullmatch(line) is not None), (line, pattern_list)


def test_known_shapes():
    matcher = CommandPatterns(["git status", "git log *", "npm run test:*", "rm * -rf",
                               "shutdown*"])
    assert matcher.fullmatch("git status")
    assert not matcher.fullmatch("git status --short")
    assert matcher.fullmatch("git log")
    assert matcher.fullmatch("git log --oneline")
    assert matcher.fullmatch("git log\t-1")
    assert not matcher.fullmatch("git logx")
    assert not matcher.fullmatch("npm run tests")
    assert matcher.fullmatch("npm run test --watch")
    assert matcher.fullmatch("rm a b -rf")
    assert matcher.fullmatch("shutdown")
    assert matcher.fullmatch("shutdownx -h now")
    assert not matcher.fullmatch("sudo shutdown")


@given(st.text(ALPHABET, max_size=5), st.text(ALPHABET, max_size=5))
def test_subcommand_words_match_as_fnmatch(word, pattern):
    assert _word_matches(word, pattern) == fnmatchcase(word, pattern)
