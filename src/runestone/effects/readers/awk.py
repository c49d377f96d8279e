"""awk: its options, then its program, read token by token for what reaches outside.

An awk program computes on its input; it reaches outside only through `system()`, pipes
(`print | "cmd"`, `"cmd" | getline`, gawk's `|&`), output redirection (`print > "file"`,
`>>`), `getline < "file"`, and gawk's `@load` / `@include`. The program is tokenised as
the POSIX awk grammar describes (strings, regular expressions where an operand may start,
comments), and a `>` counts as redirection only inside a `print`/`printf` statement outside
parentheses, as the grammar says. A redirection to a file named by a string literal is a
write of that file; to anything computed, it is not understood. Operands are input files,
except `var=value` assignments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from runestone.effects.catalogue import Catalogue
from runestone.effects.model import CommandSpec, OptionSpec
from runestone.effects.options import may_split, parse
from runestone.effects.reader import Collector, take_options
from runestone.shell.model import SimpleCommand, Word

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SPECIAL_FILES = frozenset({"/dev/stdout", "/dev/stderr", "-"})
# After these tokens a `/` starts a regular expression rather than a division.
_REGEX_AFTER = frozenset({"", "(", ",", "{", "}", ";", "\n", "!", "~", "&&", "||", "?", ":",
                          "=", "+=", "-=", "*=", "/=", "%=", "^=", "==", "!=", "<", "<=", ">",
                          ">=", "+", "-", "*", "%", "^", "print", "printf", "return", "in",
                          "!~", "|", "getline"})
_TOKEN = re.compile(r"""
    (?P<space>[ \t\r]+|\\\n)
  | (?P<comment>\#[^\n]*)
  | (?P<newline>\n)
  | (?P<string>"(?:\\.|[^"\\\n])*")
  | (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)
  | (?P<word>@?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|&|\|\||&&|>>|>=|<=|==|!=|!~|\+\+|--|\+=|-=|\*=|/=|%=|\^=|[-+*/%^!<>=~?:;,(){}\[\]$|])
""", re.VERBOSE)


class ProgramError(ValueError):
    pass


class AwkEffects:
    __slots__ = ("executes", "reads", "writes")

    def __init__(self) -> None:
        self.executes = False
        self.reads: list[str] = []
        self.writes: list[str] = []


def read_awk(spec: CommandSpec, words: Sequence[Word], collector: Collector,
             catalogue: Catalogue, command: SimpleCommand, home: str | None,
             inherited: tuple[OptionSpec, ...]) -> None:
    table = catalogue.option_table(spec, inherited)
    parsed = parse(words, table, spec.style.removesuffix("+neg"))
    take_options(parsed, collector)
    if parsed.problem:
        collector.fail(parsed.problem)
        return
    programs: list[Word] = []
    for option, value, _negated in parsed.options:
        if value is None:
            continue
        if "-f" in option.names or "--file" in option.names:
            collector.fail("the awk program comes from a file")
            return
        if "--source" in option.names or "-e" in option.names:
            programs.append(value)
        if "--load" in option.names or "-l" in option.names or \
                "--include" in option.names or "-i" in option.names:
            collector.fail("awk loads an extension or includes a source file")
            return
    operands = list(parsed.operands)
    if not programs:
        if not operands:
            collector.fail("awk without a program")
            return
        programs.append(operands.pop(0))
    if any(may_split(w) for w in operands):
        collector.fail("an operand known only at run time may become several words")
        return
    effects = AwkEffects()
    for program in programs:
        if program.dynamic:
            collector.fail("the awk program is only known at run time")
            return
        try:
            read_program(program.text, effects)
        except ProgramError as exc:
            collector.fail(f"the awk program is not understood: {exc}")
            return
    if effects.executes:
        collector.effects.add("exec")
    for path in effects.reads:
        collector.path(Word(path, path), "read")
    for path in effects.writes:
        collector.path(Word(path, path), "write")
    for word in operands:
        collector.positionals.append(word.text)
        collector.words.append(word.text)
        if _ASSIGNMENT.match(word.text) or word.text == "-":
            continue
        collector.path(word, "read")


def tokens(program: str) -> list[tuple[str, str]]:
    """(kind, text) tokens; regular expressions and strings are single tokens."""
    out: list[tuple[str, str]] = []
    i = 0
    previous = ""
    while i < len(program):
        c = program[i]
        if c == "/" and previous in _REGEX_AFTER:
            end = _regex_end(program, i + 1)
            out.append(("regex", program[i:end]))
            previous = "regex"
            i = end
            continue
        match = _TOKEN.match(program, i)
        if match is None:
            raise ProgramError(f"unexpected character {c!r}")
        kind = match.lastgroup or ""
        text = match.group()
        i = match.end()
        if kind in ("space", "comment"):
            continue
        if kind == "newline":
            out.append(("op", "\n"))
            previous = "\n"
            continue
        out.append((kind, text))
        previous = text if kind in ("op", "word") else kind
    return out


def _regex_end(program: str, i: int) -> int:
    in_class = False
    while i < len(program):
        c = program[i]
        if c == "\\":
            i += 2
            continue
        if c == "\n":
            raise ProgramError("a newline inside a regular expression")
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if program[i + 1:i + 2] == "]":
                i += 1
        elif c == "/":
            return i + 1
        i += 1
    raise ProgramError("an unterminated regular expression")


def read_program(program: str, effects: AwkEffects) -> None:
    """Find what an awk program reaches outside its input and output."""
    toks = tokens(program)
    in_print = False
    depth = 0
    for index, (kind, text) in enumerate(toks):
        following = toks[index + 1] if index + 1 < len(toks) else ("", "")
        if kind == "word":
            if text.startswith("@"):
                raise ProgramError(f"gawk directive {text}")
            if text == "system" and following[1] == "(":
                effects.executes = True
            elif text in ("print", "printf"):
                in_print, depth = True, 0
            elif text == "getline":
                after = index + 1
                if following[0] == "word":  # `getline var < "file"`
                    after += 1
                if after < len(toks) and toks[after] == ("op", "<"):
                    target = toks[after + 1] if after + 1 < len(toks) else ("", "")
                    _file_target(target, effects.reads)
            continue
        if kind != "op":
            continue
        if text in ("|", "|&"):
            effects.executes = True
        elif text in (";", "\n", "{", "}"):
            in_print = False
        elif text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif text in (">", ">>") and in_print and depth <= 0:
            _file_target(following, effects.writes)


def _file_target(token: tuple[str, str], into: list[str]) -> None:
    kind, text = token
    if kind == "string":
        name = text[1:-1]
        if "\\" in name:
            raise ProgramError("a file name with escapes")
        if name not in _SPECIAL_FILES:
            into.append(name)
        return
    raise ProgramError("output or input redirected to a file named at run time")
