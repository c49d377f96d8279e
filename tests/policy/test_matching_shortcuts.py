"""The shortcuts a cold hook takes instead of compiling regexes answer exactly as the regexes.

An attacker shapes the command line; a shortcut that disagrees with the pattern it stands
for is an allow rule that fires too often or a deny rule that misses. So each is checked
against the regular expression it replaces, on lines built to sit at the edges: a prefix
followed by every kind of whitespace, by a non-space, or by nothing.
"""

from __future__ import annotations

import contextlib
import re
from fnmatch import fnmatchcase

from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.policy.globs import (
    CommandPatterns,
    command_pattern_source,
    expand_anchor,
    names_project,
    project_key,
)
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


# Glob patterns as policies write them: each anchor, relative and absolute shapes, Windows
# spellings, and the edge characters an anchor test could trip on.
GLOB_PIECES = st.sampled_from(["{project}", "{home}", "{runestone-state}", "~", "./", "/",
                               "**/", "*", "src", ".env", "x", "..", ".", "C:\\", "\\",
                               "%APPDATA%", "$env:", "~user", "//srv", ":"])
glob_patterns = st.lists(GLOB_PIECES, min_size=1, max_size=5).map("".join)
places = st.sampled_from(["/work/app", "/work/other/deep", "/", "/c:/users/dev/app",
                          "C:\\Users\\dev\\app", "//srv/share/app", "/home/dev"])


@settings(max_examples=800)
@given(glob_patterns, places, places, st.sampled_from(["/home/dev", "/root", "C:\\Users\\dev"]))
def test_a_glob_said_not_to_name_the_project_expands_alike_in_every_project(
        pattern, project, other, home):
    """`project_key` leaves the project out of the key of globs expanded for a place when
    no glob names it: a glob it wrongly says is project-free would be matched, in every
    project, against its expansion for the first project seen."""
    key = project_key(project, home, names_project(pattern))
    other_key = project_key(other, home, names_project(pattern))
    if key == other_key:
        assert expand_anchor(pattern, project, home) == expand_anchor(pattern, other, home)


def test_which_globs_name_the_project():
    for pattern in ("{project}/.git/hooks/**", "./build", "src/**", "docs/x.md"):
        assert names_project(pattern), pattern
    for pattern in ("/etc/**", "~/.ssh/**", "~", "{home}/.aws/**", "**/.env", ".env",
                    "*.pem", "{runestone-state}/**", "build/"):
        assert not names_project(pattern), pattern
    assert project_key("/work/app", "/home/dev", False) == ""
    assert project_key("/work/app", "/home/dev", True) == "/work/app"
    assert project_key("C:\\app", "/home/dev", False) == "C:\\app"  # Windows: every expansion


GLOB_ALPHABET = st.sampled_from([*"ab/.*?[]!-", "**/"])
globs_text = st.lists(GLOB_ALPHABET, max_size=10).map("".join)


@given(globs_text)
def test_every_glob_of_a_command_line_reads_as_a_regex(arg_glob):
    """The agent writes the globs: one bash reads (`[z-a]`, an empty range) must not end
    the decision as an internal error, nor print a warning beside a hook's answer."""
    import warnings

    from runestone.policy.globs import glob_as_regex, glob_source

    re.purge()  # a pattern compiled before is not parsed (nor warned about) again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        glob_as_regex.__wrapped__(arg_glob)
        with contextlib.suppress(re.error):  # a policy's: the loader says what is wrong
            re.compile(glob_source(arg_glob))


def test_a_bracket_bash_reads_as_empty_matches_nothing(tmp_path):
    import subprocess

    from runestone.policy.globs import glob_as_regex

    for name in ("a", "z", "[z-a]x"):
        (tmp_path / name).touch()
    listed = subprocess.run(["bash", "-c", "shopt -s nullglob; echo [z-a]*"], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout.split()
    assert listed == []
    assert not any(glob_as_regex("[z-a]*").fullmatch(name) for name in ("a", "z", "[z-a]x"))
    assert glob_as_regex("[a-b]*").fullmatch("a")
