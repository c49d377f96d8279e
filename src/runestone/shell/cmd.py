"""cmd.exe one-liners: the commands a `cmd /c` line runs, and what stays opaque.

cmd has no grammar package to lean on, and only a small part of it is needed: one line of
commands joined by `&`, `&&`, `||` and `|`, with `"` quoting, `^` escapes, redirections
(`>`, `>>`, `2>`, `<`, `2>&1`, `>nul`) and `%VAR%` expansion. Built-in commands (`dir`,
`type`, `copy`, `move`, `del`/`erase`, `rd`/`rmdir`, `md`/`mkdir`, `ren`, `echo`, `set`,
`cd`...) are named `cmd:NAME` so the catalogue of programs reads them apart from the
programs of the same name elsewhere; their arguments are split at blanks, `,`, `;` and
`=` as cmd splits them. Any other command is a program, which receives its command line and
splits it by the C runtime's rules. Blocks, `if`, `for`, `goto`, `call :label` and
delayed expansion are not analysed: they are opaque.
"""

from __future__ import annotations

import re

from runestone.shell.base import AnalyzerBase
from runestone.shell.model import Redirect, ShellAnalysis, SimpleCommand, Word
from runestone.shell.pwsh import names

DIALECT = "cmd"
MAX_DEPTH = 8
BUILTINS = {
    "dir": "dir", "type": "type", "copy": "copy", "move": "move", "del": "del",
    "erase": "del", "rd": "rd", "rmdir": "rd", "md": "md", "mkdir": "md", "ren": "ren",
    "rename": "ren", "echo": "echo", "set": "set", "cd": "cd", "chdir": "cd", "cls": "cls",
    "ver": "ver", "vol": "vol", "pushd": "pushd", "popd": "popd", "title": "title",
    "rem": "rem", "exit": "exit", "path": "path", "mklink": "mklink", "assoc": "assoc",
    "ftype": "ftype", "start": "start", "verify": "verify", "date": "date", "time": "time",
    "setlocal": "setlocal", "endlocal": "endlocal", "pause": "pause", "color": "color",
    "prompt": "prompt", "break": "break",
}
_CONTROL = frozenset({"if", "for", "goto", "call", "shift"})
_VARIABLE = re.compile(r"%([^%\s]+)%")
_HOME_VARIABLES = frozenset({"userprofile", "home"})
_REDIRECT = re.compile(r"^(\d?)(>>|>|<)(&\d)?")


class CmdAnalyzer(AnalyzerBase):
    """Walks one cmd line (and the lines it runs) into commands and opaque parts."""

    def __init__(self, cwd: str | None, home: str | None, max_depth: int = MAX_DEPTH) -> None:
        super().__init__(cwd, home, max_depth)

    def run(self, line: str, via: tuple[str, ...] = (), depth: int = 0) -> None:
        if depth > self.max_depth:
            self._opaque("too-deep", f"command lines nested more than {self.max_depth} deep",
                         line)
            return
        for match in _VARIABLE.finditer(line):
            if match.group(1).lower() not in _HOME_VARIABLES or not self.home:
                self._opaque("variable-expansion", f"cmd expands {match.group(0)} before it "
                             "splits the line, so its value can change what runs", line)
                break
        segments = _split_commands(line)
        if segments is None:
            self._opaque("parse-error", "the cmd line has an unclosed quote or a block; what "
                         "it would run cannot be known", line)
            return
        upstream: list[SimpleCommand] = []
        for index, (text, operator_before, piped_out) in enumerate(segments):
            del index
            start = len(self.commands)
            stdin = "pipe" if operator_before == "|" else ""
            self._command(text.strip(), via, depth, piped_out, stdin,
                          upstream if stdin else [])
            upstream = [c for c in self.commands[start:] if c.via == via]

    def _command(self, text: str, via: tuple[str, ...], depth: int, piped_out: bool,
                 stdin: str, upstream: list[SimpleCommand]) -> None:
        if not text:
            return
        text = text.lstrip("@").strip()
        words, redirects = self._words(text)
        if not words:
            if redirects:
                self.commands.append(SimpleCommand("", (), tuple(redirects), via=via,
                                                   cwd=self.cwd, dialect=DIALECT))
            return
        head = words[0]
        first, slash, switches = head.text.partition("/")
        if slash and first.lower() in BUILTINS:
            # `rd/s/q x`: cmd ends a built-in's name at the switch character.
            head = Word(first, first)
            words = [head, Word("/" + switches, "/" + switches), *words[1:]]
        if head.dynamic:
            self._opaque("variable-command", "the command name comes from a variable", text)
            self.commands.append(SimpleCommand("", tuple(words), tuple(redirects), via=via,
                                               cwd=self.cwd, dialect=DIALECT))
            return
        folded = head.text.lower().rstrip(".")
        if folded in _CONTROL or head.text.startswith(("(", ":")):
            self._opaque("cmd-control", f"cmd's `{folded}` is not analysed", text)
            return
        builtin = BUILTINS.get(folded)
        if builtin is not None:
            argv = [head, *_builtin_words(words[1:], text, builtin)]
            name = f"cmd:{builtin}"
        else:
            name, _ = names.resolve(head.text)
            argv = words
        command = SimpleCommand(name, tuple(argv), tuple(redirects), (), via, self.cwd,
                                piped_out=piped_out, stdin=stdin,
                                upstream=tuple(upstream), dialect=DIALECT)
        self.commands.append(command)
        self._follow(command, text, via, depth)

    def _follow(self, command: SimpleCommand, text: str, via: tuple[str, ...],
                depth: int) -> None:
        name = command.name
        args = list(command.args)
        if name in ("cmd:cd", "cmd:pushd"):
            operands = [w for w in args if not w.text.startswith("/")]
            if len(operands) == 1 and not operands[0].dynamic:
                from runestone.shell.pwsh.analyzer import join_cwd

                self.cwd = join_cwd(self.cwd, operands[0].text, self.home)
            elif operands:
                self.cwd = None
        elif name == "cmd:popd":
            self.cwd = None
        elif name == "cmd:set" and args and not args[0].text.lower().startswith("/"):
            self.notes.append(f"sets the environment variable {args[0].text}")
            if args[0].text.lower() in _HOME_VARIABLES:
                self.home = None
        elif name == "cmd":
            for index, word in enumerate(args):
                flag = word.text.lower()
                if flag in ("/c", "/k", "/r"):
                    rest = text.split(None, 1)[1] if " " in text else ""
                    inner = rest[rest.lower().find(flag) + 2:] if flag in rest.lower() else ""
                    del index
                    self.run(slash_c_line(inner), (*via, "cmd /c"), depth + 1)
                    return
                if not flag.startswith("/"):
                    break
            self._opaque("interactive-shell", "cmd without /c starts an interactive shell",
                         text)
        elif name in ("powershell", "pwsh"):
            from runestone.shell.pwsh.analyzer import analyze_powershell

            line = text.split(None, 1)[1] if " " in text else ""
            inner = analyze_powershell(f"{command.argv[0].text} {line}", cwd=self.cwd,
                                       home=self.home, via=via, depth=depth + 1)
            # The outer call re-reads `powershell ...` as PowerShell: keep what it runs.
            self.commands.pop()
            self.commands.extend(c._replace(dialect=c.dialect) for c in inner.commands)
            for entry in inner.opaque:
                if entry not in self.opaque:
                    self.opaque.append(entry)
            self.notes.extend(inner.notes)

    def _words(self, text: str) -> tuple[list[Word], list[Redirect]]:
        """Split a command into words (as a program's C runtime would) and redirections."""
        tokens = _tokens(text)
        words: list[Word] = []
        redirects: list[Redirect] = []
        index = 0
        while index < len(tokens):
            raw, quoted = tokens[index]
            match = None if quoted else _REDIRECT.match(raw)
            if match is not None:
                rest = raw[match.end():]
                index += 1
                if match.group(3):
                    continue  # `2>&1`
                if not rest:
                    if index >= len(tokens):
                        break
                    rest = tokens[index][0]
                    index += 1
                target = self._value(rest)
                if target.text.lower() != "nul":
                    mode = "read" if match.group(2) == "<" else "write"
                    redirects.append(Redirect(match.group(2), mode, target))
                continue
            words.append(self._value(raw))
            index += 1
        return words, redirects

    def _value(self, raw: str) -> Word:
        """Quote removal, `^` escapes and `%VAR%` expansion (the home only)."""
        out: list[str] = []
        dynamic = False
        quoted = False
        i = 0
        while i < len(raw):
            c = raw[i]
            if c == '"':
                quoted = not quoted
            elif c == "^" and not quoted and i + 1 < len(raw):
                out.append(raw[i + 1])
                i += 1
            elif c == "%":
                match = _VARIABLE.match(raw, i)
                if match is None:
                    out.append(c)
                elif match.group(1).lower() in _HOME_VARIABLES and self.home:
                    out.append(self.home)
                    i = match.end() - 1
                else:
                    out.append(match.group(0))
                    dynamic = True
                    i = match.end() - 1
            else:
                out.append(c)
            i += 1
        text = "".join(out)
        return Word(text, raw, dynamic, any(ch in "*?" for ch in text))


def slash_c_line(rest: str) -> str:
    """The line `cmd /c REST` runs: cmd keeps the quotes around the only quoted span when
    it names a program file (`"C:\\Program Files\\x.exe"`), and otherwise drops the first
    and the last quote (`cmd /c "dir & del x"` runs `dir & del x`)."""
    rest = rest.strip()
    if not rest.startswith('"'):
        return rest
    quotes = rest.count('"')
    between = rest[1:rest.rfind('"')]
    if quotes == 2 and not any(c in between for c in "&<>()@^|") and re.search(
            r"\.(exe|com|cmd|bat)$", between, re.IGNORECASE):
        return rest
    last = rest.rfind('"')
    return rest[1:last] + rest[last + 1:]


def _split_commands(line: str) -> list[tuple[str, str, bool]] | None:
    """(command text, the operator before it, whether its output is piped) for each command
    of the line; None when a quote is left open or a parenthesised block appears."""
    parts: list[tuple[str, str]] = []
    current: list[str] = []
    operator = ""
    quoted = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == '"':
            quoted = not quoted
        elif not quoted and c == "^" and i + 1 < n:
            current.append(line[i:i + 2])
            i += 2
            continue
        elif not quoted and c in "()" and not "".join(current).strip().lower().startswith(
                ("echo", "rem")):
            return None
        elif not quoted and c in "&|":
            double = line[i:i + 2] in ("&&", "||")
            if not (c == "&" and i > 0 and line[i - 1] == ">"):
                parts.append(("".join(current), operator))
                current = []
                operator = line[i:i + 2] if double else c
                i += 2 if double else 1
                continue
        elif c in "\r\n" and not quoted:
            parts.append(("".join(current), operator))
            current = []
            operator = "&"
            i += 1
            continue
        current.append(c)
        i += 1
    if quoted:
        return None
    parts.append(("".join(current), operator))
    return [(text, op, index + 1 < len(parts) and parts[index + 1][1] == "|")
            for index, (text, op) in enumerate(parts)]


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Words at blanks outside quotes (quotes kept for `_value`), with whether quoted."""
    tokens: list[tuple[str, bool]] = []
    current: list[str] = []
    quoted = False
    any_quote = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            quoted = not quoted
            any_quote = True
        elif c == "^" and not quoted and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        elif c in " \t" and not quoted:
            if current:
                tokens.append(("".join(current), any_quote))
                current, any_quote = [], False
            i += 1
            continue
        elif c in "<>" and not quoted and current and not "".join(current).isdigit():
            tokens.append(("".join(current), any_quote))
            current, any_quote = [], False
            continue
        current.append(c)
        i += 1
    if current:
        tokens.append(("".join(current), any_quote))
    return tokens


def _builtin_words(words: list[Word], text: str, builtin: str) -> list[Word]:
    """Built-ins split their arguments at `,`, `;` and `=` too (`del a,b` deletes both),
    and glued switches apart (`rd/s/q`). `echo` and `set` take the rest as text."""
    if builtin in ("echo", "set", "title", "rem", "prompt"):
        return words
    out: list[Word] = []
    for word in words:
        if word.raw.startswith('"'):
            out.append(word)
            continue
        for piece in re.split(r"[,;=]", word.text):
            if not piece:
                continue
            if piece.startswith("/") and "/" in piece[1:]:
                out.extend(Word("/" + s, "/" + s, word.dynamic) for s in piece.split("/") if s)
            else:
                out.append(Word(piece, piece, word.dynamic, word.glob))
    return out


def analyze_cmd(source: str, *, cwd: str | None = None, home: str | None = None,
                max_depth: int = MAX_DEPTH) -> ShellAnalysis:
    """Every command a cmd.exe line would run, and every part left opaque. Never raises."""
    analyzer = CmdAnalyzer(cwd, home, max_depth)
    return analyzer.analysis(source)
