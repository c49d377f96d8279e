"""Bash words as bash sees them: brace expansion, tilde, quote removal, and what stays unknown.

The parser finds where a word starts and ends; this module gives it its value. Quote
removal follows the bash manual (single quotes, double quotes with their four escapes,
`$'...'` ANSI-C strings, backslashes), so `r''m`, `"r"m`, `\\rm`, `$'\\x72\\x6d'` and
`$'\\162\\155'` all read as `rm`. Anything whose value needs the running shell (`$VAR`,
`$(...)`, backquotes, arithmetic) makes the word *dynamic*; it is never guessed, except
`$HOME` and `$PWD`, whose values the caller knows.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from runestone.lazy_pattern import lazy
from runestone.shell.model import Word

BRACE_LIMIT = 256
_NAME = lazy(r"[A-Za-z_][A-Za-z0-9_]*")
_SEQUENCE = lazy(r"^(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.(-?\d+))?$")
_SPECIAL_PARAMETERS = frozenset("@*#?$!-0123456789")
_SPECIAL_IN_WORD = re.compile(r"[\\'\"$`*?\[~]")
_SPECIAL_FOR_BOUNDS = re.compile(r"[\\'\"$`\s;&|<>]")
_ANSI_SIMPLE = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n",
                "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}


class WordEnv(NamedTuple):
    """What the analyzer knows of the shell's state: home and working directory.

    `home` is None when `$HOME` is unknown (reassigned earlier, or on another machine).
    """

    home: str | None
    cwd: str | None


class BraceLimitError(ValueError):
    """Brace expansion would produce more words than anyone would mean to write."""


# --- skipping quoted spans ----------------------------------------------------------------


def _skip_single(raw: str, i: int) -> int:
    end = raw.find("'", i)
    return len(raw) if end < 0 else end + 1


def _skip_escaped_to(raw: str, i: int, closer: str) -> int:
    """Skip to just after `closer`, where a backslash escapes the next character."""
    n = len(raw)
    while i < n:
        if raw[i] == "\\":
            i += 2
        elif raw[i] == closer:
            return i + 1
        else:
            i += 1
    return n


def _skip_ansi(raw: str, i: int) -> int:
    return _skip_escaped_to(raw, i, "'")


def _skip_backtick(raw: str, i: int) -> int:
    return _skip_escaped_to(raw, i, "`")


def _skip_double(raw: str, i: int) -> int:
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        elif c == "$" and i + 1 < n and raw[i + 1] in "({":
            i = _skip_group(raw, i + 2, raw[i + 1])
        elif c == "`":
            i = _skip_backtick(raw, i + 1)
        else:
            i += 1
    return n


def _skip_group(raw: str, i: int, opener: str) -> int:
    """Skip to just after the `)` or `}` closing a `$(` / `${` whose body starts at i."""
    closer = ")" if opener == "(" else "}"
    depth = 1
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            i = _skip_single(raw, i + 1)
            continue
        if c == '"':
            i = _skip_double(raw, i + 1)
            continue
        if c == "`":
            i = _skip_backtick(raw, i + 1)
            continue
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def unquoted_positions(raw: str) -> list[int]:
    """Indices of the characters of `raw` that stand outside quotes and expansions."""
    positions: list[int] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\":
            i += 2
        elif c == "'":
            i = _skip_single(raw, i + 1)
        elif c == '"':
            i = _skip_double(raw, i + 1)
        elif c == "`":
            i = _skip_backtick(raw, i + 1)
        elif c == "$" and i + 1 < n and raw[i + 1] == "'":
            i = _skip_ansi(raw, i + 2)
        elif c == "$" and i + 1 < n and raw[i + 1] == '"':
            i = _skip_double(raw, i + 2)
        elif c == "$" and i + 1 < n and raw[i + 1] in "({":
            i = _skip_group(raw, i + 2, raw[i + 1])
        else:
            positions.append(i)
            i += 1
    return positions


# --- brace expansion ----------------------------------------------------------------------


def has_brace_expansion(raw: str) -> bool:
    return _find_brace(raw) is not None


def expand_braces(raw: str, limit: int = BRACE_LIMIT) -> list[str]:
    """Bash brace expansion of one word's source text: `{/,x}` -> `/`, `x`.

    Quoted braces and `${...}` do not expand. Raises BraceLimitError past `limit` words.
    """
    found = _find_brace(raw)
    if found is None:
        return [raw]
    start, end, alternatives = found
    results: list[str] = []
    for alternative in alternatives:
        for word in expand_braces(raw[:start] + alternative + raw[end + 1:], limit):
            results.append(word)
            if len(results) > limit:
                raise BraceLimitError(f"brace expansion makes more than {limit} words")
    return results


def _find_brace(raw: str) -> tuple[int, int, list[str]] | None:
    if "{" not in raw:
        return None
    positions = unquoted_positions(raw)
    for k, start in enumerate(positions):
        if raw[start] != "{":
            continue
        depth = 0
        commas: list[int] = []
        for pos in positions[k:]:
            c = raw[pos]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    alternatives = _alternatives(raw, start, pos, commas)
                    if alternatives is not None:
                        return start, pos, alternatives
                    break
            elif c == "," and depth == 1:
                commas.append(pos)
    return None


def _alternatives(raw: str, start: int, end: int, commas: list[int]) -> list[str] | None:
    if commas:
        bounds = [start, *commas, end]
        return [raw[bounds[i] + 1:bounds[i + 1]] for i in range(len(bounds) - 1)]
    match = _SEQUENCE.match(raw[start + 1:end])
    if match is None:
        return None
    first, last, step_text = match.groups()
    step = abs(int(step_text)) if step_text else 1
    step = step or 1
    if first.lstrip("-").isdigit() and last.lstrip("-").isdigit():
        a, b = int(first), int(last)
        width = max(len(first), len(last)) if first.lstrip("-").startswith("0") or \
            last.lstrip("-").startswith("0") else 0
        values = range(a, b + 1, step) if a <= b else range(a, b - 1, -step)
        if len(values) > BRACE_LIMIT:
            raise BraceLimitError(f"brace sequence makes more than {BRACE_LIMIT} words")
        return [str(v).zfill(width) if width else str(v) for v in values]
    if first.isalpha() and last.isalpha():
        a, b = ord(first), ord(last)
        values = range(a, b + 1, step) if a <= b else range(a, b - 1, -step)
        return [chr(v) for v in values]
    return None


# --- quote removal ------------------------------------------------------------------------


def word_value(raw: str, env: WordEnv) -> Word:
    """The value of one word (after brace expansion) as bash would pass it to a program."""
    if not _SPECIAL_IN_WORD.search(raw):
        return Word(raw, raw)  # the common case: nothing to remove, expand or glob
    out: list[str] = []
    dynamic = False
    glob = False
    i = _tilde(raw, env, out)
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "\\":
            if i + 1 < n:
                if raw[i + 1] != "\n":
                    out.append(raw[i + 1])
                i += 2
            else:
                out.append("\\")
                i += 1
        elif c == "'":
            end = _skip_single(raw, i + 1)
            out.append(raw[i + 1:end - 1] if raw[end - 1:end] == "'" else raw[i + 1:end])
            i = end
        elif c == '"':
            i, dyn = _double_quoted(raw, i + 1, env, out)
            dynamic |= dyn
        elif c == "$" and i + 1 < n and raw[i + 1] == "'":
            i = _ansi_c(raw, i + 2, out)
        elif c == "$" and i + 1 < n and raw[i + 1] == '"':
            i, dyn = _double_quoted(raw, i + 2, env, out)
            dynamic |= dyn
        elif c == "$":
            i, dyn = _dollar(raw, i, env, out)
            dynamic |= dyn
        elif c == "`":
            i = _backtick(raw, i, out)
            dynamic = True
        else:
            if c in "*?" or (c == "[" and "]" in raw[i + 2:]):
                glob = True
            out.append(c)
            i += 1
    return Word("".join(out), raw, dynamic, glob)


def _backtick(raw: str, i: int, out: list[str]) -> int:
    """A `...` substitution at `i` is kept as written (its value is not known here)."""
    end = _skip_backtick(raw, i + 1)
    out.append(raw[i:end])
    return end


def _tilde(raw: str, env: WordEnv, out: list[str]) -> int:
    """Expand a leading unquoted `~` or `~/`; `~user` stays for the path resolver."""
    if not raw.startswith("~"):
        return 0
    slash = raw.find("/")
    prefix = raw[1:] if slash < 0 else raw[1:slash]
    end = len(raw) if slash < 0 else slash
    if prefix == "" and env.home is not None:
        out.append(env.home)
        return end
    if prefix == "+" and env.cwd is not None:
        out.append(env.cwd)
        return end
    return 0


def _double_quoted(raw: str, i: int, env: WordEnv, out: list[str]) -> tuple[int, bool]:
    dynamic = False
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == '"':
            return i + 1, dynamic
        if c == "\\" and i + 1 < n and raw[i + 1] in '$`"\\\n':
            if raw[i + 1] != "\n":
                out.append(raw[i + 1])
            i += 2
        elif c == "$":
            i, dyn = _dollar(raw, i, env, out)
            dynamic |= dyn
        elif c == "`":
            i = _backtick(raw, i, out)
            dynamic = True
        else:
            out.append(c)
            i += 1
    return n, dynamic


def _dollar(raw: str, i: int, env: WordEnv, out: list[str]) -> tuple[int, bool]:
    """A `$` expansion at raw[i]; static only for `$HOME` and `$PWD` when they are known."""
    n = len(raw)
    nxt = raw[i + 1] if i + 1 < n else ""
    if nxt in ("(", "{"):
        end = _skip_group(raw, i + 2, nxt)
        inner = raw[i + 2:end - 1] if nxt == "{" else None
        value = _known(inner, env) if inner is not None else None
        out.append(value if value is not None else raw[i:end])
        return end, value is None
    match = _NAME.match(raw, i + 1)
    if match:
        value = _known(match.group(), env)
        out.append(value if value is not None else "$" + match.group())
        return match.end(), value is None
    if nxt and nxt in _SPECIAL_PARAMETERS:
        out.append(raw[i:i + 2])
        return i + 2, True
    out.append("$")
    return i + 1, False


def _known(name: str, env: WordEnv) -> str | None:
    if name == "HOME":
        return env.home
    if name == "PWD":
        return env.cwd
    return None


def _ansi_c(raw: str, i: int, out: list[str]) -> int:
    """Decode a `$'...'` body starting at raw[i]; returns the index after the closing quote."""
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            return i + 1
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = raw[i + 1]
        if e in _ANSI_SIMPLE:
            out.append(_ANSI_SIMPLE[e])
            i += 2
        elif e in "01234567":
            digits = re.match(r"[0-7]{1,3}", raw[i + 1:i + 4])
            assert digits is not None
            out.append(chr(int(digits.group(), 8) & 0xFF))
            i += 1 + len(digits.group())
        elif e == "x":
            digits = re.match(r"[0-9A-Fa-f]{1,2}", raw[i + 2:i + 4])
            if digits:
                out.append(chr(int(digits.group(), 16)))
                i += 2 + len(digits.group())
            else:
                out.append("\\x")
                i += 2
        elif e in "uU":
            size = 4 if e == "u" else 8
            digits = re.match(rf"[0-9A-Fa-f]{{1,{size}}}", raw[i + 2:i + 2 + size])
            if digits:
                code = int(digits.group(), 16)
                out.append(chr(code) if code <= 0x10FFFF else "\ufffd")
                i += 2 + len(digits.group())
            else:
                out.append("\\" + e)
                i += 2
        elif e == "c" and i + 2 < n:
            out.append(chr(ord(raw[i + 2]) & 0x1F))
            i += 3
        else:
            out.append("\\" + e)
            i += 2
    return n


def is_whole_word(raw: str) -> bool:
    """Is `raw` exactly one bash word: every quote closed, no unquoted blank or operator?

    The parser's word boundaries are checked against this independent scan; where they
    disagree, the parser misread the input and the analyzer must not trust it.
    """
    if not _SPECIAL_FOR_BOUNDS.search(raw):
        return True
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            end = raw.find("'", i + 1)
            if end < 0:
                return False
            i = end + 1
            continue
        if c in ('"', "`") or (c == "$" and i + 1 < n and raw[i + 1] in "'\"({"):
            if c == '"':
                end = _skip_double(raw, i + 1)
                closed = raw[end - 1:end] == '"' and end - 1 > i
            elif c == "`":
                end = _skip_backtick(raw, i + 1)
                closed = raw[end - 1:end] == "`" and end - 1 > i
            elif raw[i + 1] == "'":
                end = _skip_ansi(raw, i + 2)
                closed = raw[end - 1:end] == "'" and end - 1 > i + 1
            elif raw[i + 1] == '"':
                end = _skip_double(raw, i + 2)
                closed = raw[end - 1:end] == '"' and end - 1 > i + 1
            else:
                end = _skip_group(raw, i + 2, raw[i + 1])
                closed = raw[end - 1:end] in (")", "}") and end - 1 > i + 1
            if not closed:
                return False
            i = end
            continue
        if c in " \t\n;&|<>":
            return False
        i += 1
    return True
