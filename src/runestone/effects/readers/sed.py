"""sed: its options, then its script, read command by command as GNU sed reads it.

Most sed scripts only edit text, but the language can read files (`r`, `R`), write them
(`w`, `W`, and the `w` flag of `s`), and run commands (`e`, and the `e` flag of `s`). The
script is read command by command (addresses, `s` and `y` with any delimiter, `a`/`i`/`c`
text, labels, blocks, comments), after the "sed scripts" chapter of the GNU sed manual;
a script it cannot follow is not understood. `--sandbox` makes sed itself refuse `e`, `r`
and `w`. `-i` turns the input files into files sed edits.
"""

from __future__ import annotations

from collections.abc import Sequence

from runestone.effects.catalogue import Catalogue
from runestone.effects.model import CommandSpec, OptionSpec
from runestone.effects.options import may_split, parse
from runestone.effects.reader import Collector, take_options
from runestone.shell.model import SimpleCommand, Word

_SIMPLE = frozenset("=dDgGhHnNpPxzF")
_LABELLED = frozenset("btT")
_TEXT = frozenset("aic")
_EXIT = frozenset("qQlL")
_SPECIAL_FILES = frozenset({"/dev/stdout", "/dev/stderr", "/dev/stdin"})


class ScriptError(ValueError):
    pass


class SedEffects:
    """What a script does beyond editing text."""

    __slots__ = ("executes", "reads", "writes")

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.writes: list[str] = []
        self.executes = False


def read_sed(spec: CommandSpec, words: Sequence[Word], collector: Collector,
             catalogue: Catalogue, command: SimpleCommand, home: str | None,
             inherited: tuple[OptionSpec, ...]) -> None:
    table = catalogue.option_table(spec, inherited)
    parsed = parse(words, table, "gnu")
    take_options(parsed, collector)
    if parsed.problem:
        collector.fail(parsed.problem)
        return
    scripts: list[Word] = []
    in_place = sandbox = False
    for option, value, _negated in parsed.options:
        if "--expression" in option.names and value is not None:
            scripts.append(value)
        if "--file" in option.names:
            scripts.append(Word("", "", dynamic=True))  # a script we cannot see here
        in_place = in_place or "--in-place" in option.names
        sandbox = sandbox or "--sandbox" in option.names
    operands = list(parsed.operands)
    if not scripts:
        if not operands:
            collector.fail("sed without a script")
            return
        scripts.append(operands.pop(0))
    if any(may_split(w) for w in operands):
        collector.fail("an operand known only at run time may become several words")
        return
    effects = SedEffects()
    for script in scripts:
        if script.dynamic:
            collector.fail("the sed script is only known at run time (or comes from a file)")
            return
        try:
            read_script(script.text, effects)
        except ScriptError as exc:
            collector.fail(f"the sed script is not understood: {exc}")
            return
    if not sandbox:
        if effects.executes:
            collector.effects.add("exec")
        for path in effects.reads:
            collector.path(Word(path, path), "read")
        for path in effects.writes:
            collector.path(Word(path, path), "write")
    for word in operands:
        collector.positionals.append(word.text)
        collector.words.append(word.text)
        if word.text == "-":
            continue
        collector.path(word, "edit" if in_place else "read")


def read_script(script: str, effects: SedEffects) -> None:
    """Walk a sed script; record files read and written and whether it runs commands."""
    reader = _Script(script, effects)
    reader.run()


class _Script:
    def __init__(self, text: str, effects: SedEffects) -> None:
        self.text = text
        self.i = 0
        self.effects = effects

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def run(self) -> None:
        depth = 0
        while True:
            self.skip_blank_and_separators()
            if self.i >= len(self.text):
                break
            if self.peek() == "#":
                self.to_line_end()
                continue
            self.address()
            self.skip_spaces()
            if self.peek() == "!":
                self.i += 1
                self.skip_spaces()
            command = self.peek()
            if not command:
                raise ScriptError("an address without a command")
            self.i += 1
            if command == "{":
                depth += 1
            elif command == "}":
                depth -= 1
                if depth < 0:
                    raise ScriptError("unmatched }")
            elif command in _SIMPLE:
                self.end_of_command()
            elif command in _EXIT:
                self.skip_spaces()
                self.digits()
                self.end_of_command()
            elif command in _LABELLED or command == ":":
                self.label()
            elif command in _TEXT:
                self.text_argument()
            elif command in "rRwW":
                name = self.filename()
                if name not in _SPECIAL_FILES:
                    (self.effects.reads if command in "rR" else self.effects.writes).append(name)
            elif command == "e":
                self.effects.executes = True
                self.to_line_end()
            elif command == "s":
                self.substitute()
            elif command == "y":
                delimiter = self.take_delimiter()
                self.delimited(delimiter)
                self.delimited(delimiter)
                self.end_of_command()
            elif command == "v":
                self.label()
            else:
                raise ScriptError(f"unknown command {command!r}")
        if depth:
            raise ScriptError("unmatched {")

    # --- pieces --------------------------------------------------------------------------

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t"):
            self.i += 1

    def skip_blank_and_separators(self) -> None:
        while self.peek() in (" ", "\t", "\n", ";"):
            self.i += 1

    def to_line_end(self) -> None:
        end = self.text.find("\n", self.i)
        self.i = len(self.text) if end < 0 else end

    def end_of_command(self) -> None:
        self.skip_spaces()
        if self.peek() == "#":
            self.to_line_end()
            return
        if self.peek() not in ("", "\n", ";", "}"):
            raise ScriptError(f"unexpected {self.peek()!r} after a command")

    def digits(self) -> None:
        while self.peek().isdigit():
            self.i += 1

    def address(self) -> None:
        if not self.one_address():
            return
        self.skip_spaces()
        if self.peek() == ",":
            self.i += 1
            self.skip_spaces()
            if self.peek() in ("+", "~"):
                self.i += 1
                self.digits()
            elif not self.one_address():
                raise ScriptError("a range without its second address")

    def one_address(self) -> bool:
        c = self.peek()
        if c.isdigit():
            self.digits()
            if self.peek() == "~":
                self.i += 1
                self.digits()
            return True
        if c == "$":
            self.i += 1
            return True
        if c in ("/", "\\"):
            if c == "\\":
                self.i += 1
            delimiter = self.take_delimiter() if c == "\\" else self.take_slash()
            self.delimited(delimiter)
            while self.peek() in ("I", "M"):
                self.i += 1
            return True
        return False

    def take_slash(self) -> str:
        self.i += 1
        return "/"

    def take_delimiter(self) -> str:
        c = self.peek()
        if not c or c in ("\n", "\\"):
            raise ScriptError("a missing delimiter")
        self.i += 1
        return c

    def delimited(self, delimiter: str) -> None:
        """Skip to just past the next unescaped delimiter (a newline may be escaped)."""
        while self.i < len(self.text):
            c = self.text[self.i]
            if c == "\\":
                self.i += 2
                continue
            if c == "\n" and delimiter != "\n":
                raise ScriptError("a newline inside a regular expression")
            self.i += 1
            if c == delimiter:
                return
        raise ScriptError(f"an unterminated `{delimiter}`")

    def substitute(self) -> None:
        delimiter = self.take_delimiter()
        self.delimited(delimiter)
        self.delimited(delimiter)
        while True:
            c = self.peek()
            if c in ("g", "p", "i", "I", "m", "M") or c.isdigit():
                self.i += 1
            elif c == "e":
                self.effects.executes = True
                self.i += 1
            elif c == "w":
                self.i += 1
                name = self.filename()
                if name not in _SPECIAL_FILES:
                    self.effects.writes.append(name)
                return
            else:
                break
        self.end_of_command()

    def label(self) -> None:
        self.skip_spaces()
        while self.peek() not in ("", "\n", ";"):
            self.i += 1

    def filename(self) -> str:
        self.skip_spaces()
        start = self.i
        self.to_line_end()
        name = self.text[start:self.i]
        if not name:
            raise ScriptError("a file command without a file name")
        return name

    def text_argument(self) -> None:
        """`a\\` + lines (a trailing backslash continues), or GNU's one-line `a text`."""
        self.skip_spaces()
        if self.peek() == "\\":
            self.i += 1
            if self.peek() == "\n":
                self.i += 1
        while self.i < len(self.text):
            c = self.text[self.i]
            if c == "\\":
                self.i += 2
                continue
            if c == "\n":
                return
            self.i += 1
