"""PowerShell argument values as PowerShell reads them: quoting, backtick escapes, variables.

The grammar says where an argument starts and ends; this module gives it its value by the
quoting rules of the PowerShell language specification (about_Quoting_Rules,
about_Special_Characters):

- single quotes are literal; `''` inside them is one `'`;
- double quotes expand: a backtick escapes the next character (`` `n `` is a newline,
  `` `" `` a quote, `` `$ `` a dollar), `""` is one `"`, and `$name`, `${name}` and
  `$(...)` are only known when the command runs;
- a bare word is literal except for backticks and variables.

A value that needs the running shell makes the word dynamic; it is never guessed, except
the user's home (`$HOME`, `$env:USERPROFILE`, `$env:HOME`) when the caller knows it. Whether
a backtick escape such as `` `t `` means a tab in a bare word is not settled by the
specification, so such a word is dynamic too. Every value keeps `glob` when it holds a
wildcard (`*`, `?`, `[`): cmdlets expand wildcards in -Path values whether quoted or not.
"""

from __future__ import annotations

import re

from runestone.shell.model import Word

_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t", "v": "\v"}
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<name>(?:[A-Za-z_][A-Za-z0-9_]*:)?"
                       r"[A-Za-z0-9_?]+|[$^?]))")
_HOME_VARIABLES = frozenset({"home", "env:userprofile", "env:home"})
_STATIC_VARIABLES = {"true": "$true", "false": "$false", "null": "$null"}
WILDCARDS = frozenset("*?[")


class _Reading:
    __slots__ = ("dynamic", "out")

    def __init__(self) -> None:
        self.out: list[str] = []
        self.dynamic = False


def argument_value(raw: str, home: str | None) -> Word:
    """The value of one command argument as written (`"src\\a b.txt"`, `'it''s'`, `a`tb`).

    An argument that is an expression (`(...)`, `$(...)`, `@(...)`, `{...}`, `[type]...`,
    a variable followed by `.`, `[` or `(`) is dynamic: its commands are walked separately.
    """
    if raw[:1] in ("(", "@", "{", "[") or raw.startswith("$("):
        return Word(raw, raw, dynamic=True)
    reading = _Reading()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            i = _verbatim(raw, i + 1, reading)
        elif c == '"':
            i = _expandable(raw, i + 1, reading, home)
        elif c == "`":
            if i + 1 >= n:
                reading.dynamic = True
                i += 1
                continue
            nxt = raw[i + 1]
            if nxt in _ESCAPES or nxt == "u":
                reading.dynamic = True  # the escape may or may not apply in a bare word
            reading.out.append(nxt)
            i += 2
        elif c == "$":
            i = _variable(raw, i, reading, home)
        else:
            reading.out.append(c)
            i += 1
    text = "".join(reading.out)
    return Word(text, raw, reading.dynamic, any(ch in WILDCARDS for ch in text))


def _verbatim(raw: str, i: int, reading: _Reading) -> int:
    n = len(raw)
    while i < n:
        if raw[i] == "'":
            if raw[i + 1:i + 2] == "'":
                reading.out.append("'")
                i += 2
                continue
            return i + 1
        reading.out.append(raw[i])
        i += 1
    reading.dynamic = True  # unterminated: the grammar and these rules disagree
    return n


def _expandable(raw: str, i: int, reading: _Reading, home: str | None) -> int:
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == '"':
            if raw[i + 1:i + 2] == '"':
                reading.out.append('"')
                i += 2
                continue
            return i + 1
        if c == "`" and i + 1 < n:
            nxt = raw[i + 1]
            if nxt == "u":
                reading.dynamic = True
                reading.out.append("`u")
            else:
                reading.out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        if c == "$":
            if raw[i + 1:i + 2] == "(":
                reading.dynamic = True
                depth, i = 1, i + 2
                reading.out.append("$(")
                while i < n and depth:
                    depth += {"(": 1, ")": -1}.get(raw[i], 0)
                    i += 1
                continue
            i = _variable(raw, i, reading, home)
            continue
        reading.out.append(c)
        i += 1
    reading.dynamic = True
    return n


def _variable(raw: str, i: int, reading: _Reading, home: str | None) -> int:
    match = _VARIABLE.match(raw, i)
    if match is None:
        reading.out.append("$")  # a lone `$` is literal
        return i + 1
    name = (match.group("braced") if match.group("braced") is not None
            else match.group("name")).lower()
    if name in _HOME_VARIABLES and home:
        reading.out.append(home)
    elif name in _STATIC_VARIABLES and match.end() == len(raw) and i == 0:
        reading.out.append(_STATIC_VARIABLES[name])
    else:
        reading.dynamic = True
        reading.out.append(match.group(0))
    return match.end()


def string_value(raw: str, home: str | None) -> Word:
    """A string literal in expression mode (`'a'`, `"b$x"`, here-strings)."""
    if raw.startswith(("@'", '@"')):
        body = raw[2:]
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("\n", 1)[0] if "\n" in body else ""
        if raw.startswith("@'"):
            return Word(body, raw, False, any(ch in WILDCARDS for ch in body))
        return argument_value('"' + body.replace('"', '""') + '"', home)._replace(raw=raw)
    return argument_value(raw, home)
