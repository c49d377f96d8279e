"""Quote removal and word splitting agree with bash itself, for generated words.

Words are built from a safe alphabet (no glob, tilde, brace or expansion characters
outside quotes) with single quotes, double quotes, backslash escapes and `$'...'`
strings, then given to the real bash: `printf '%s\\0' WORDS`. The analyzer must find the
same words.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from runestone.shell import analyze

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")

PLAIN = "abcxyzABC019_-./=:,+@%^"
INSIDE_SINGLE = PLAIN + " \"\\$`*?[]{}~#;&|<>()!\t"
INSIDE_DOUBLE = PLAIN + " '*?[]{}~#;&|<>()\t"

plain = st.text(PLAIN, min_size=1, max_size=6)
single = st.text(INSIDE_SINGLE, max_size=6).map(lambda s: f"'{s}'")
double_piece = st.one_of(
    st.text(INSIDE_DOUBLE, min_size=1, max_size=4),
    st.sampled_from(["\\\"", "\\\\", "\\$", "\\`", "\\a", "\\n"]),
)
double = st.lists(double_piece, max_size=4).map(lambda parts: '"' + "".join(parts) + '"')
escaped = st.sampled_from(PLAIN + " '\"$`*?[]{}~#;&|<>()!").map(lambda c: "\\" + c)
ansi_piece = st.one_of(
    st.text(PLAIN + " \"", min_size=1, max_size=4),
    st.sampled_from(["\\n", "\\t", "\\\\", "\\'", "\\x41", "\\x7a", "\\101", "\\0101",
                     "\\u00e9", "\\e", "\\a", '\\"', "\\?"]),
)
ansi = st.lists(ansi_piece, max_size=4).map(lambda parts: "$'" + "".join(parts) + "'")
segment = st.one_of(plain, single, double, escaped, ansi)


def _word_ok(word: str) -> bool:
    # A word must not start with `#` (a comment) and must be non-empty after quoting.
    return not word.startswith(("\\#", "#"))


word = st.lists(segment, min_size=1, max_size=5).map("".join).filter(_word_ok)


def bash_words(words: list[str]) -> list[str]:
    script = "printf '%s\\0' " + " ".join(words) + " END"
    out = subprocess.run([BASH, "--norc", "--noprofile", "-c", script], capture_output=True,
                         timeout=10, check=True).stdout
    return [w.decode("utf-8", "surrogateescape") for w in out.split(b"\0")[:-2]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(word, min_size=1, max_size=4))
def test_words_equal_what_bash_passes(words):
    expected = bash_words(words)
    # A closing word keeps a trailing escaped blank (`\\ `) from ending the input, which
    # tree-sitter-bash cannot parse (the analyzer then reports a parse error, failing closed).
    analysis = analyze("printf '%s\\0' " + " ".join(words) + " END", cwd="/w", home="/h")
    # tree-sitter-bash misreads a few rare spellings (an ANSI-C string ending in an escaped
    # backslash followed by quotes); the analyzer then says parse-error and the action
    # can only be asked about. The property that matters: whenever the analyzer claims to
    # understand a command, its words are bash's words. `assume` drops the opaque cases;
    # hypothesis fails the test if it has to drop many.
    assume(not analysis.opaque)
    (command,) = analysis.commands
    got = [w.text for w in command.args[1:-1]]
    # bash drops NUL bytes from arguments; so does a C program's argv.
    assert [g.split("\0", 1)[0] for g in got] == expected
    assert not any(w.dynamic for w in command.args)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
@example("env -S")  # an option's missing value once read past the end of env's words
@example("env -u")
def test_any_text_is_analysed_without_an_internal_error(text):
    # analyze() turns its own crashes into an `analyzer-error` opaque part (fail closed);
    # none may happen.
    analysis = analyze(text, cwd="/w", home="/h")
    assert analysis.source == text
    assert "analyzer-error" not in {o.kind for o in analysis.opaque}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["rm", "-rf", "/", "'", '"', "$(", ")", "`", "|", ";", "&&",
                                 "<<", "EOF", "\n", "{", "}", "(", ")", "$'\\x72'", "\\",
                                 "sudo", "bash -c", "eval", "${IFS}", "*", "~", "<(", ">"]),
                max_size=30).map(" ".join))
def test_shell_like_noise_has_no_internal_error_and_a_leading_rm_is_seen(text):
    analysis = analyze(text, cwd="/w", home="/h")
    assert "analyzer-error" not in {o.kind for o in analysis.opaque}
    if analysis.opaque:
        return
    # Fully understood and starting with the word `rm`: rm is among what would run.
    if text == "rm" or text.startswith("rm "):
        assert "rm" in {c.name for c in analysis.commands}, analysis
